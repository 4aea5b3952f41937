"""Generated sentences, pinned word for word for a tiny ledger with known counts."""

from __future__ import annotations

import pandas as pd

from milcourts.views import narrative as n
from milcourts.views.audit import load_audit
from milcourts.views.narrative import describe_ledger, describe_timeline_caption, format_count, format_date, plural
from tests.conftest import row


def test_formatting_helpers():
    assert format_count(10025.0) == "10,025"
    assert format_date(pd.Timestamp("2023-12-05")) == "5 December 2023"
    assert plural(1, "figure") == "1 figure"
    assert plural(2, "period was", "periods were") == "2 periods were"


def test_describe_ledger_exact_sentences(write_ledger):
    path = write_ledger(
        [
            row(figure_id="F001", period_end="2023-12-29", value="5024", source_date="2023-12-29"),
            row(figure_id="F002", value="5092", source_date="2024-03-04"),
            row(figure_id="F003", article="338", value="156"),
            row(
                figure_id="F004",
                article="all_refusal",
                value="5000",
                source_date="2024-12-27",
                source_publisher="Other outlet",
            ),
            row(figure_id="F005", measure="share", value="88", source_date=""),
            row(figure_id="F006", series="help_requests", article="na", value="577"),
        ]
    )
    sentences = describe_ledger(load_audit(path))
    assert sentences == [
        "The ledger holds 6 published figures from 2 publishers, published between 29 December 2023 and "
        "27 December 2024; 1 figure has no known publication date.",
        "5 figures count cases received by military courts (AWOL (Art. 337): 3; desertion (Art. 338): 1; all "
        "three articles: 1).",
        "Of these, 4 figures on cases can be used as sums of the monthly series over 36 calendar months "
        "(January 2021 to December 2023); 1 figure is set aside, each with its reason below.",
        "1 period was published more than once; in 1 of them the latest publication is higher than the first, "
        "as expected when courts post cases late.",
        "1 set of figures cannot all hold on one counting base (1 where parts exceed their whole); they are "
        "listed below and kept, not averaged away.",
    ]


def test_timeline_caption_counts_undrawable_and_early_figures(write_ledger):
    path = write_ledger(
        [
            row(),
            row(figure_id="F002", period_end="", source_date=""),
            row(figure_id="F003", period_start="2010-01-01", period_end="2010-12-31", source_date="2011-01-01"),
        ]
    )
    caption = describe_timeline_caption(load_audit(path).ledger, first_year=2020)
    assert caption.endswith(
        "1 figure without a published start or end date cannot be drawn; "
        "1 figure starting before 2020 is drawn from the left edge."
    )


def test_trend_sentences_word_for_word():
    from milcourts.views import narrative as n

    assert n.format_percent(47.38) == "47%" and n.format_percent(2.471) == "2.5%"
    assert n.format_percent(-15.2) == "−15%" and n.format_percent(-0.04) == "0.0%"
    assert n.format_percent(2.471, signed=True) == "+2.5%" and n.format_percent(-0.04, signed=True) == "0.0%"
    assert n.describe_latest_year("AWOL (Art. 337)", 2024, (9213.4, 8312.0, 10311.0), (1.78, 1.61, 1.99)) == (
        "Military courts received about 9,200 (8,300 to 10,400) AWOL (Art. 337) cases in 2024; the range is "
        "where the true number lies with 95% probability. That is 1.8 (1.6 to 2.0) times as many as in 2023."
    )
    assert n.describe_latest_year("x", 2024, (100.0, 90.0, 110.0), (1.02, 0.93, 1.12)).endswith(
        ", about as many as in 2023 (ratio 1.0 (0.9 to 1.1))."
    )
    assert n.describe_jump("2022-10", 1.798, 1.124, 3.034) == (
        "In October 2022, the first month after mobilisation was announced (21 September 2022) and the Criminal "
        "Code was amended to punish these offences harder in wartime (24 September 2022), the monthly count "
        "jumped by a factor of 1.8 (95% interval 1.1 to 3.0)."
    )
    assert n.describe_jump("2022-10", 1.04, 0.39, 3.08).endswith(
        "the published figures cannot tell whether the monthly count jumped: the rise came in the months that followed."
    )
    assert n.describe_excess_for_readers("2022-10", "2024-12", 12242.1, 10069.2, 13943.7).startswith(
        "From October 2022 to December 2024 the courts received about 12,200 (10,000 to 14,000) more cases than "
        "the trend before mobilisation would have produced"
    )
    # the full posterior's estimate and interval lead where they differ; the tables' approximation in brackets
    cautious = n.describe_jump("2022-10", 1.798, 1.124, 3.034, sampled=(1.7, 0.82, 3.21))
    assert cautious.endswith(
        "the published figures show no clear jump in the monthly count: the best estimate is a factor of 1.7, but "
        "anything from 0.8 to 3.2 fits them (95% interval, the model's uncertainty sampled in full; the quicker "
        "approximation behind this report's tables gives 1.1 to 3.0). The rise came in the months that followed."
    )
    assert n.describe_jump("2022-10", 1.798, 1.124, 3.034, sampled=(1.9, 1.05, 3.5)).endswith(
        "jumped by a factor of 1.9 (95% interval 1.1 to 3.5, the model's uncertainty sampled in full; the quicker "
        "approximation behind this report's tables gives 1.1 to 3.0)."
    )
    excess = n.describe_excess_for_readers("2022-10", "2024-12", 12242.1, 10069.2, 13943.7, (12071.1, 7208.1, 14540.3))
    assert excess.startswith(
        "From October 2022 to December 2024 the courts received about 12,100 (7,200 to 14,600) more cases than the "
        "trend before mobilisation would have produced (the model's uncertainty sampled in full; the quicker "
        "approximation behind this report's tables gives 10,000 to 14,000);"
    )
    assert n.describe_identification(-0.5, 3) is None
    assert n.describe_identification(-0.81, 3) == (
        "Before the break the ledger has only 3 figures for this article, so the published figures cannot fully "
        "separate the trend before mobilisation from the jump at it: read the jump together with the growth that "
        "followed, not on its own."
    )
    assert n.describe_fit_for_readers(15, 17, ["2023 (published 4 March 2024)", "2022 (published 1 June 2023)"]) == (
        "Of the 17 exactly published figures for this article, the model's expectation is within two standard "
        "deviations of 15; further off: 2023 (published 4 March 2024) and 2022 (published 1 June 2023)."
    )
    assert n.describe_validation(35, 38, 0.3003, 5, 6) == (
        "Scored on figures it had not seen when fitted, the model's 95% intervals covered 35 of 38 "
        "later-published figures and 5 of 6 left-out short-window figures; its forecast errors averaged 0.30 "
        "times those of carrying the latest published rate forward."
    )


def test_one_rounding_rule_for_every_estimate_with_its_range():
    from milcourts.views import narrative as n

    assert n.format_estimate(9213.4, 8412.0, 10311.0) == "about 9,200 (8,400 to 10,400)"
    assert n.format_estimate(12242.1, 10069.2, 13943.7) == "about 12,200 (10,000 to 14,000)"
    assert n.format_estimate(37.2, 20.1, 60.4) == "about 37 (20 to 61)"
    assert n.format_estimate(3.4, 2.0, 5.2) == "about 3 (2 to 6)"
    assert n.format_estimate(724.0, 520.0, 1100.0) == "about 720 (520 to 1,100)"
    for value, lo, hi in ((9213.4, 8412.0, 10311.0), (555.5, 554.0, 557.0), (123456.0, 120000.0, 130000.0)):
        v, a, b = n.round_estimate(value, lo, hi)
        assert a <= lo and b >= hi  # never narrower than computed
        assert len(str(abs(v)).rstrip("0")) <= 3  # never more than three significant figures


def test_summary_sentences_word_for_word():
    from milcourts.views import narrative as n

    assert n.describe_shares(
        [
            ("AWOL (Art. 337)", 88.6, 87.2, 90.1),
            ("desertion (Art. 338)", 5.1, 4.2, 6.0),
            ("refusing orders (Art. 332)", 0.6, 0.4, 0.8),
        ]
    ) == (
        "AWOL (Art. 337) made up 89% of them (95% interval 87% to 90%), desertion (Art. 338) 5% (4% to 6%) "
        "and refusing orders (Art. 332) 0.6% (0.4% to 0.8%)."
    )
    assert n.describe_cross_check_for_readers(10, ["October 2024 (published 27 December 2024)"], []) == (
        "Fitted again without the 10 figures published for the three articles together, the model's sum of the "
        "three agrees with 9 of them; it is in tension with October 2024 (published 27 December 2024), a bound "
        "it meets with less than even odds."
    )
    assert n.describe_requests_growth("2023-01", "2024-01", 19.7, 10.6, 29.7, 10.2, 7.9, 13.1) == (
        "Requests for help to desert received by Idite Lesom grew by 20% a month (95% interval 11% to 30%) from "
        "January 2023 to January 2024, against 10% a month (95% interval 7.9% to 13%) for AWOL and desertion "
        "cases reaching military courts over the same months."
    )
    assert n.describe_lag(5, [2, 3, 4, 5, 6], 60.0, 43.1, 7, 0.16, 3, 0.48) == (
        "Of the lags tried, court filings 5 months later track the requests most closely (yet the best in only "
        "16% of the simulations of the court model, against 48% for 3 months), but lags of 2 to 6 "
        "months all fit about as well (the 95% set of lags); a plain trend fits the 7 request windows better "
        "than filings at any lag, so the lead is suggestive, not established."
    )
    assert n.describe_lag(0, [0], 10.0, 43.1, 7, 1.0, 0, 1.0) == (
        "Of the lags tried, court filings in the same month track the requests most closely (the best lag in "
        "100% of the simulations of the court model), and better than a plain trend fits the 7 request windows."
    )
    assert "lags of 1, 3 and 4 months" in n.describe_lag(3, [1, 3, 4], 10.0, 43.1, 7, 0.5, 3, 0.5)
    assert "against 60% for the same month)" in n.describe_lag(2, [0, 2], 10.0, 43.1, 7, 0.3, 0, 0.6)


def test_the_latest_months_are_said_to_be_provisional_with_the_release_and_its_contradiction():
    text = n.describe_provisional_months(
        "2024-08", "2024-12", pd.Timestamp("2024-12-27"), (801.5, "all three articles, 2024")
    )
    assert text.startswith("August to December 2024 are provisional: only the release of 27 December 2024")
    assert "disagrees with itself by about 800 cases (all three articles, 2024; see the audit)" in text
    assert text.endswith("Later releases confirmed the months up to July 2024.")
    assert "disagrees" not in n.describe_provisional_months("2024-08", "2024-12", pd.Timestamp("2024-12-27"))


def test_a_span_of_months_names_a_shared_year_once():
    assert n.format_span("2024-08", "2024-12") == "August to December 2024"
    assert n.format_span("2024-11", "2025-02") == "November 2024 to February 2025"
    assert n.format_span("2024-08", "2024-08") == "August 2024"


def test_release_completeness_says_what_the_pairs_measured_and_where_the_shared_delay_stands_in():
    revised = n.RevisedRelease(
        release=pd.Timestamp("2023-12-29"),
        later="2024-03-04",
        pairs=3,
        observed=(0.98538, 0.98190, 0.98834),
        expected=0.98447,
        own_lag_days=(1.61, 0.81, 2.53),
        own_share_posted=(0.928, 0.898, 0.953),
    )
    first, latest = n.describe_release_completeness(
        [revised],
        n_releases=17,
        last_days=30,
        shared_lag_days=1.78,
        prior_days=(7.07, 1.0, 50.0),
        latest=(pd.Timestamp("2024-12-27"), (0.922, 0.877, 0.947)),
        provisional=("2024-08", "2024-12"),
    )
    assert first == (
        "The release of 29 December 2023 is the only one whose figures were published again for the same periods "
        "(3 figures, on 4 March 2024): it had shown 98.5% (98.2% to 98.8%) of the later count, and the model expects "
        "98.4%. From those figures alone, under a prior that allows weeks (about 7 days, 95 in 100 between 1 and 50), "
        "its delay is about 1.6 days (0.8 to 2.5), against 1.8 days for the model's single delay: when it was "
        "published, courts had posted 93% (90% to 95%) of the cases of its last 30 days."
    )
    assert latest == (
        "For every other release the model's single delay stands in. The latest, of 27 December 2024, had by that "
        "delay posted 92% (88% to 95%) of its last 30 days' cases. Cases posted later than the second release of a "
        "pair (66 days after the first here) show in no pair, and no later release has covered August to December "
        "2024: those months stay provisional in every report."
    )
    (alone,) = n.describe_release_completeness(
        [], 5, 30, 3.0, (7.07, 1.0, 50.0), latest=(pd.Timestamp("2024-12-27"), (0.9, 0.8, 0.95)), provisional=None
    )[-1:]
    assert alone.startswith("For every release the model's single delay stands in.")  # none measured
    assert "months late would show in no figure yet." in alone


def test_a_release_that_contradicts_itself_in_words():
    row = {
        "release_date": "2024-12-27",
        "period_start": "2024-01-01",
        "period_end": "2024-12-27",
        "excess": 801.47,
        "article": "all_refusal",
        "implied_value": 9506.5,
        "part_value": 10308.0,
    }
    text = n.describe_release_disagreement(row)
    assert "The release of 27 December 2024 disagrees with itself by about 800 cases of all three articles" in text
    assert "would have about 9,500 cases, not the 10,308 it states" in text


def test_an_effect_the_figures_cannot_identify_is_said_without_a_number():
    text = n.describe_jump("2022-10", 26.1, 2.49, 279.3, "its 95% interval spans a factor of 112")
    assert "cannot be estimated from the published figures (its 95% interval spans a factor of 112)" in text
    assert "26" not in text.replace("(24 September 2022)", "")


def test_the_forecast_says_how_it_continues_the_series():
    local = n.describe_forecast_for_readers(
        "2025-01", "2025-06", (4806, 3986, 5659), pd.Timestamp("2024-12-27"), "local_level", ("2024-05", "2024-07")
    )
    assert "at the rate of May to July 2024, the latest months later releases have confirmed" in local
    assert "about 4,800 (3,900 to 5,700) cases from January to June 2025" in local
    damped = n.describe_forecast_for_readers(
        "2025-01", "2025-06", (100, 80, 120), pd.Timestamp("2024-12-27"), "damped_trend"
    )
    assert "if the trend of the last 6 months carries on, flattening out" in damped


def test_posterior_check_says_how_it_was_run_and_where_the_ranges_differ():
    how, finding = n.describe_posterior_check(
        chains=4,
        draws_per_chain=1000,
        max_rhat=1.0052,
        min_ess=1513.3,
        divergences=0,
        is_converged=True,
        n_agree=20,
        n_differ=30,
        n_total=62,
        typical_error=0.031,
        error_multiple=2.0,
        agreement_share=0.1,
        median_width_ratio=1.16,
        widest=("AWOL (Art. 337)", "cases beyond the pre-break trend, October 2022 to December 2024", 2.15),
        understated=[("how much releases disagree beyond late posting", 2.21)],
    )
    assert "4 independent chains of 1,000 draws" in how
    assert (
        "(largest R-hat, the usual measure of that, 1.005; at most 1.01 is required; at least 1,513 effectively" in how
    )
    assert finding.startswith("Of the 62 ranges compared (effects, yearly totals and single months; all are in this")
    assert "typically 16% wider than the reports', and up to 2.1 times as wide (AWOL (Art. 337), cases beyond" in (
        finding
    )
    assert "how much releases disagree beyond late posting (spread 2.2 times as wide when sampled)" in finding
    assert (
        "20 agree: each end within 10% of the range's width, even allowing for the chance variation of a finite "
        "number of draws (twice its standard error, which is typically 3% of a range's width); 30 differ by more "
        "than 10% even "
        "allowing for it; for the other 12 the difference is within that chance variation, too close to call with "
        "this many draws."
    ) in finding
    _, failed = n.describe_posterior_check(
        4, 1000, 1.08, 90.0, 3, False, 61, 1, 62, 0.02, 2.0, 0.1, 1.0, ("x", "y", 1.1), []
    )
    assert "did not pass its own checks" in _ and "Typical widths agree within a tenth." in failed
    assert "61 agree: each end" in failed and "; 1 differs by more than 10% even allowing for it." in failed


def test_a_table_caption_names_the_ranges_that_are_wider_when_sampled():
    assert n.describe_sampled_notes([]) == ""
    notes = [("the jump at the break for AWOL (Art. 337)", "0.8 to 3.2"), ("the cases beyond it", "7,200 to 14,600")]
    assert n.describe_sampled_notes(notes) == (
        " Sampled in full rather than approximated, the model's uncertainty is materially wider for the jump at the "
        "break for AWOL (Art. 337): 0.8 to 3.2; the cases beyond it: 7,200 to 14,600 (see the report on how the "
        "numbers are estimated and checked)."
    )
