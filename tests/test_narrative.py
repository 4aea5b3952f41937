"""Generated sentences, pinned word for word for a tiny ledger with known counts."""

from __future__ import annotations

import pandas as pd

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
        "5 figures count court filings (AWOL (Art. 337): 3; desertion (Art. 338): 1; all three articles: 1).",
        "Of these, 4 figures on cases can be used as sums of the monthly series over 36 calendar months "
        "(January 2021 to December 2023); 1 figure is set aside, each with its reason below.",
        "1 period was published more than once; in 1 of them the latest publication is higher than the first, "
        "as expected when courts post cases late.",
        "1 set of figures cannot all hold on one counting base (1 parts exceed whole); they are listed below "
        "and kept, not averaged away.",
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
    assert n.describe_growth("AWOL (Art. 337)", 2.47, 0.24, 4.70, 47.4, 31.5, 65.1, "2023-01", "2023-03") == (
        "AWOL (Art. 337) cases reaching military courts grew by 47% a month (95% CI 32% to 65%) in January 2023 "
        "to March 2023, the fastest period after the mobilisation, against 2.5% a month (95% CI 0.2% to 4.7%) "
        "before it."
    )
    assert n.describe_latest_growth(-15.2, -44.2, 26.8, "2024-10", "2024-12") == (
        "In the latest period the data cover, October 2024 to December 2024, the monthly change was −15% "
        "(95% CI −44% to 27%): no longer clearly growing."
    )
    assert n.describe_latest_growth(8.6, 1.0, 16.3, "2023-10", "2023-10").endswith(
        "October 2023, the monthly change was 8.6% (95% CI 1.0% to 16%): still growing."
    )
    assert n.describe_level_step("2022-10", 1.798, 1.124, 3.034) == (
        "At the break in October 2022 the monthly rate changed by a factor of 1.80 (95% CI 1.12 to 3.03)."
    )
    assert n.describe_level_step("2022-10", 1.04, 0.39, 3.08).endswith(
        "(95% CI 0.39 to 3.08); the figures cannot tell a jump from no jump, so the rise is carried by the growth "
        "that followed."
    )
    assert n.describe_excess("2022-10", "2024-12", 12242.1, 10069.2, 13943.7) == (
        "From October 2022 to December 2024, about 12,242 more cases (95% CI 10,069 to 13,944) reached the "
        "courts than the pre-mobilisation trend would have produced."
    )
    assert n.describe_forecast(6, "2025-01", "2025-06", 3995.2, 1172.0, 9816.4) == (
        "For the 6 months after the data end (January 2025 to June 2025) the model expects about 3,995 cases "
        "(95% prediction interval 1,172 to 9,816), if the recent trend continues, slowing."
    )
    assert n.describe_identification(-0.5, 3) is None
    assert n.describe_identification(-0.81, 3) == (
        "Before the break the ledger has only 3 figures for this article, so the pre-break trend and the jump "
        "are hard to tell apart (their estimates correlate at −0.81 across draws): read the jump together with "
        "the growth that followed, not on its own."
    )
    assert n.describe_fit(12, 17, ["F043", "F052"]) == (
        "The model reproduces 12 of 17 exact published figures for this article within their 95% intervals; "
        "the exceptions (F043, F052) are marked in the residual chart."
    )
    assert n.describe_fit(1, 1, []) == (
        "The model reproduces 1 of 1 exact published figure for this article within their 95% intervals."
    )
    assert n.describe_validation(35, 38, 0.3003, 5, 6) == (
        "Scored on figures it had not seen when fitted, the model's 95% intervals covered 35 of 38 "
        "later-published figures and 5 of 6 left-out short-window figures; its forecast errors averaged 0.30 "
        "times those of carrying the latest published rate forward."
    )


def test_summary_sentences_word_for_word():
    from milcourts.views import narrative as n

    total = {"estimate": 10410.2, "lower_95": 9551.0, "upper_95": 11472.4}
    previous = {"estimate": 5740.0, "lower_95": 5407.0, "upper_95": 6135.0}
    assert n.describe_year_total(2024, total, previous) == (
        "In 2024 military courts received an estimated 10,410 cases under the three refusal articles "
        "(95% prediction interval 9,551 to 11,472), against 5,740 (5,407 to 6,135) in 2023."
    )
    assert n.describe_year_total(2024, total, None).endswith("(95% prediction interval 9,551 to 11,472).")
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
    assert n.describe_cross_check(9, 10, ["F064"]) == (
        "Refitted without the 10 figures published for the three articles together, the model's sum of the "
        "articles is consistent with 9 of them (inside their 95% prediction intervals); F064 falls outside."
    )
    assert n.describe_cross_check(2, 4, ["F1", "F2"]).endswith("; F1 and F2 fall outside.")
    assert n.describe_cross_check(1, 1, []).endswith(
        "1 figure published for the three articles together, the model's "
        "sum of the articles is consistent with 1 of them (inside their "
        "95% prediction intervals)."
    )
    assert n.describe_requests_growth("2023-01", "2024-01", 19.7, 10.6, 29.7, 10.2, 7.9, 13.1) == (
        "Requests for help to desert received by Idite Lesom grew by 20% a month (95% CI 11% to 30%) from "
        "January 2023 to January 2024, against 10% a month (95% interval 7.9% to 13%) for AWOL and desertion "
        "cases reaching military courts over the same months."
    )
    assert n.describe_lag(5, [2, 3, 4, 5, 6], 60.0, 43.1, 7, 0.16, 3, 0.48) == (
        "Of the lags tried, court filings 5 months later track the requests most closely (yet the best in only "
        "16% of the court model's draws, against 48% for 3 months), but lags of 2 to 6 "
        "months all fit about as well (the 95% set of lags); a plain trend fits the 7 request windows better "
        "than filings at any lag, so the lead is suggestive, not established."
    )
    assert n.describe_lag(0, [0], 10.0, 43.1, 7, 1.0, 0, 1.0) == (
        "Of the lags tried, court filings in the same month track the requests most closely (the best lag in "
        "100% of the court model's draws), and better than a plain trend fits the 7 request windows."
    )
    assert "lags of 1, 3 and 4 months" in n.describe_lag(3, [1, 3, 4], 10.0, 43.1, 7, 0.5, 3, 0.5)
    assert "against 60% for the same month)" in n.describe_lag(2, [0, 2], 10.0, 43.1, 7, 0.3, 0, 0.6)
