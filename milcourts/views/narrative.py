"""Sentences generated from computed numbers, so the prose changes when the data does.

No figure in a report is typed by hand: each sentence here is a function of its inputs, and the
tests pin the exact wording for given inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from milcourts.model.observations import FORECAST_SLOPE_MONTHS
from milcourts.model.tables import MAX_INTERVAL_FACTOR, MAX_POSTERIOR_TO_PRIOR_SD
from milcourts.views.audit import LedgerAudit
from milcourts.vocabulary import ARTICLE_LABELS, CRIMINAL_CODE_AMENDMENTS, MOBILISATION, SERIES_WORDS


def format_count(value: float) -> str:
    """12,345 style, no decimals: every count in the ledger is whole."""
    return f"{value:,.0f}"


def format_date(moment: pd.Timestamp) -> str:
    """5 December 2023: day without a leading zero, month in words, unambiguous in any locale."""
    return f"{moment.day} {moment:%B %Y}"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    return f"{format_count(n)} {word if n == 1 else (plural_form or word + 's')}"


def describe_ledger(audit: LedgerAudit) -> list[str]:
    """Key facts about the ledger, one sentence each."""
    ledger, view = audit.ledger, audit.view
    dated = ledger["source_date"].dropna()
    sentences = [
        f"The ledger holds {plural(len(ledger), 'published figure')} from "
        f"{plural(ledger['source_publisher'].nunique(), 'publisher')}, published between "
        f"{format_date(dated.min())} and {format_date(dated.max())}; "
        f"{plural(int(ledger['source_date'].isna().sum()), 'figure has', 'figures have')} no known publication date."
    ]
    filings = ledger[ledger["series"] == view.series]
    by_article = filings["article"].value_counts()
    parts = [f"{ARTICLE_LABELS[a]}: {format_count(by_article[a])}" for a in ARTICLE_LABELS if a in by_article]
    sentences.append(f"{plural(len(filings), 'figure')} count {SERIES_WORDS[view.series]} ({'; '.join(parts)}).")
    sentences.append(
        f"Of these, {plural(len(view.figures), 'figure')} on {view.unit} can be used as sums of the monthly "
        f"series over {plural(len(view.months), 'calendar month')} "
        f"({view.months[0]:%B %Y} to {view.months[-1]:%B %Y}); "
        f"{plural(len(view.excluded), 'figure is', 'figures are')} set aside, each with its reason below."
    )
    groups = view.revisions.groupby("revision_group")["value"]
    if len(groups):
        rises = int((groups.last() > groups.first()).sum())
        sentences.append(
            f"{plural(groups.ngroups, 'period was', 'periods were')} published more than once; "
            f"in {format_count(rises)} of them the latest publication is higher than the first, as expected "
            "when courts post cases late."
        )
    kinds = view.conflicts["kind"].value_counts()
    if len(view.conflicts):
        kind_words = {
            "parts_exceed_whole": "where parts exceed their whole",
            "same_period_disagreement": "of two values for one period on one date",
            "downward_revision": "where a later release is lower",
            "within_release_disagreement": "where one release's running total and its own period totals disagree",
        }
        listed = "; ".join(f"{format_count(n)} {kind_words.get(k, k)}" for k, n in kinds.items())
        sentences.append(
            f"{plural(len(view.conflicts), 'set of figures', 'sets of figures')} cannot all hold on one "
            f"counting base ({listed}); they are listed below and kept, not averaged away."
        )
        within = view.conflicts[view.conflicts["kind"] == "within_release_disagreement"]
        sentences += [describe_release_disagreement(row) for _, row in within.iterrows()]
    else:
        sentences.append("No set of figures contradicts another on the same counting base.")
    return sentences


def describe_release_disagreement(row) -> str:
    """One release that contradicts itself (inputs.constraints, "within_release_disagreement"), in
    words: the size, and what its own figure for the latest period becomes read against its
    running total."""
    release = pd.Timestamp(row["release_date"])
    period = format_period(pd.Timestamp(row["period_start"]), pd.Timestamp(row["period_end"]))
    size = abs(row["excess"])
    return (
        f"The release of {format_date(release)} disagrees with itself by about "
        f"{format_about(size)} cases of {ARTICLE_LABELS[row['article']]}: its "
        f"running total is {'smaller' if row['excess'] > 0 else 'larger'} than its own totals for shorter periods "
        f"plus what earlier figures give for the remaining days. Read against the running total, {period} would "
        f"have about {format_about(row['implied_value'])} cases, not the "
        f"{format_count(row['part_value'])} it states. The model keeps every figure and lets each release differ."
    )


def describe_timeline_caption(ledger: pd.DataFrame, first_year: int) -> str:
    undated = int((ledger["period_start"].isna() | ledger["period_end"].isna()).sum())
    early = int((ledger["period_start"] < pd.Timestamp(first_year, 1, 1)).sum())
    return (
        f"Every figure in the ledger as a bar from period start to period end, one band per series and "
        f"article, coloured by kind of measure; figures covering a single day are dots. "
        f"{plural(undated, 'figure')} without a published start or end date cannot be drawn; "
        f"{plural(early, 'figure')} starting before {first_year} {'is' if early == 1 else 'are'} "
        "drawn from the left edge."
    )


def describe_timeline_alt_text(ledger: pd.DataFrame) -> str:
    drawable = ledger.dropna(subset=["period_start", "period_end"])
    return (
        f"Timeline of {plural(len(drawable), 'published figure')} from "
        f"{drawable['period_start'].min():%Y} to {drawable['period_end'].max():%Y}, grouped by series and "
        "article; most court-filing figures cover 2022 to 2024."
    )


def describe_pattern_caption(view) -> str:
    superseded = int((~view.figures["is_preferred"]).sum())
    return (
        f"Each row is one usable figure of {SERIES_WORDS[view.series]}, each column a "
        f"calendar month; shading is the share of the month the figure's period covers. "
        f"{plural(superseded, 'row is an earlier vintage', 'rows are earlier vintages')} of a period "
        "published again later."
    )


def describe_pattern_alt_text(view) -> str:
    single = int((view.month_weights.gt(0).sum(axis=1) == 1).sum())
    return (
        f"Grid of {plural(len(view.figures), 'figure')} by {plural(len(view.months), 'month')}; "
        f"{plural(single, 'figure covers', 'figures cover')} a single month, the rest span several months."
    )


# ----------------------------------------------------------------------------- trend report


def format_percent(value: float, signed: bool = False) -> str:
    """Growth rates: one decimal below 10%, whole numbers above; a minus sign, never a hyphen;
    `signed` puts a plus before rises too."""
    text = f"{abs(value):.1f}%" if abs(value) < 10 else f"{abs(value):.0f}%"
    zero = text in ("0.0%", "0%")
    return ("−" if value < 0 and not zero else "+" if signed and not zero else "") + text


def format_month(month: str | pd.Period) -> str:
    """2023-01 -> January 2023."""
    return f"{pd.Period(month, 'M'):%B %Y}"


def format_span(first: str, last: str) -> str:
    """2024-08, 2024-12 -> August to December 2024 (the year once when both months share it)."""
    a, b = pd.Period(first, "M"), pd.Period(last, "M")
    if a == b:
        return format_month(a)
    return f"{a:%B} to {format_month(b)}" if a.year == b.year else f"{format_month(a)} to {format_month(b)}"


def describe_identification(correlation: float, n_pre_break: int) -> str | None:
    """Said only when the pre-break figures cannot separate the pre-trend from the jump."""
    if abs(correlation) < 0.7:
        return None
    return (
        f"Before the break the ledger has only {plural(n_pre_break, 'figure')} for this article, so the published "
        "figures cannot fully separate the trend before mobilisation from the jump at it: read the jump together "
        "with the growth that followed, not on its own."
    )


def describe_validation(covered: int, total: int, relative_mae: float | None, loo_covered: int, loo_total: int) -> str:
    sentence = (
        f"Scored on figures it had not seen when fitted, the model's 95% intervals covered "
        f"{format_count(covered)} of {plural(total, 'later-published figure')} and "
        f"{format_count(loo_covered)} of {plural(loo_total, 'left-out short-window figure')}"
    )
    if relative_mae is not None and np.isfinite(relative_mae):
        sentence += (
            f"; its forecast errors averaged {relative_mae:.2f} times those of carrying the latest "
            "published rate forward"
        )
    return sentence + "."


# ----------------------------------------------------------------------------- summary report


def format_share(value: float) -> str:
    return f"{value:.0f}%" if value >= 1 else f"{value:.1f}%"


def format_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_shares(shares: list[tuple[str, float, float, float]]) -> str:
    """(label, share %, lower, upper) per article, the first the largest."""
    (label, share, lo, hi), *rest = shares
    parts = [f"{other} {format_share(s)} ({format_share(a)} to {format_share(b)})" for other, s, a, b in rest]
    return (
        f"{label[0].upper() + label[1:]} made up {format_share(share)} of them (95% interval {format_share(lo)} to "
        f"{format_share(hi)}), " + format_list(parts) + "."
    )


def describe_requests_growth(
    first: str, last: str, growth: float, lo: float, hi: float, filings: float, filings_lo: float, filings_hi: float
) -> str:
    verb = "grew" if growth >= 0 else "fell"
    return (
        f"Requests for help to desert received by Idite Lesom {verb} by {format_percent(abs(growth))} a month "
        f"(95% interval {format_percent(lo)} to {format_percent(hi)}) from {format_span(first, last)}, against "
        f"{format_percent(filings)} a month (95% interval {format_percent(filings_lo)} to "
        f"{format_percent(filings_hi)}) for AWOL and desertion cases reaching military courts over the same months."
    )


def _months_phrase(lag: int) -> str:
    return "in the same month" if lag == 0 else f"{plural(lag, 'month')} later"


def describe_lag(
    best: int,
    in_set: list[int],
    best_deviance: float,
    trend_deviance: float,
    n_windows: int,
    share_of_draws: float,
    modal_lag: int,
    modal_share: float,
) -> str:
    """The lead/lag comparison, with how far it can be trusted: `share_of_draws` is how often the
    best lag wins when repeated on draws of the court model, `modal_lag` the lag that wins most."""
    others = [lag for lag in in_set if lag != best]
    if modal_lag == best:
        robustness = f"the best lag in {100 * share_of_draws:.0f}% of the simulations of the court model"
    else:
        robustness = (
            f"yet the best in only {100 * share_of_draws:.0f}% of the simulations of the court model, against "
            f"{100 * modal_share:.0f}% for {'the same month' if modal_lag == 0 else plural(modal_lag, 'month')}"
        )
    sentence = f"Of the lags tried, court filings {_months_phrase(best)} track the requests most closely ({robustness})"
    if others:
        contiguous = in_set == list(range(in_set[0], in_set[-1] + 1))
        lags = f"{in_set[0]} to {in_set[-1]}" if contiguous else format_list([str(lag) for lag in in_set])
        sentence += f", but lags of {lags} months all fit about as well (the 95% set of lags)"
    if trend_deviance < best_deviance:
        return sentence + (
            f"; a plain trend fits the {plural(n_windows, 'request window')} better than filings at any "
            "lag, so the lead is suggestive, not established."
        )
    return sentence + f", and better than a plain trend fits the {plural(n_windows, 'request window')}."


# ----------------------------------------------------------------------------- captions and methods
# The words around the charts and tables, as functions of the numbers they mention, so that the
# prose of every report lives here and its exact wording is tested here.


def _amendments_after() -> str:
    return f"{plural((CRIMINAL_CODE_AMENDMENTS - MOBILISATION).days, 'day')} later"


def describe_trend_caption(
    n_windows: int, n_running: int, break_month: str, forecast_from: str | None, clipped: bool = False
) -> str:
    text = (
        f"Top: the model's estimate of the cases received each month, with its {RANGE_WORD}s (80% and 95%), and "
        f"{plural(n_windows, 'published figure')} drawn as a point (one month) or a bar at the monthly average of "
        f"a longer period. Bottom: {plural(n_running, 'published running total')} since the mobilisation against "
        "the model, counted as those totals count. The dashed vertical line marks the mobilisation "
        f"({format_date(MOBILISATION)}) and, {_amendments_after()}, the Criminal Code amendments "
        f"({format_date(CRIMINAL_CODE_AMENDMENTS)}); the model's break is the first month after them, "
        f"{format_month(break_month)}."
    )
    if forecast_from:
        text += f" Months from {format_month(forecast_from)} are a forecast (dashed line, lighter range)"
        text += ", whose range continues above the top of the chart." if clipped else "."
    return text


def describe_trend_alt_text(label: str, first: str, last: str, peak: float, peak_month: str) -> str:
    return (
        f"Line chart of modelled monthly {label} cases from {format_month(first)} to {format_month(last)}, "
        f"peaking at about {format_count(peak)} in {format_month(peak_month)}, "
        "with published figures overlaid and running totals in a lower panel."
    )


def describe_residual_caption(n_used: int) -> str:
    return (
        f"Each of the {plural(n_used, 'figure')} used for this article: how far the published number is from what "
        "the model expects that release to have counted (with its late posting), in standard deviations; dashed "
        "lines at two either side. A lower or upper bound (“at least”, “at most”) sits at zero unless the model "
        "breaks it."
    )


def describe_residual_alt_text(n_used: int, n_far: int) -> str:
    return (
        f"Dot chart of {plural(n_used, 'residual')}, one per figure; "
        f"{plural(n_far, 'lies', 'lie')} beyond two standard deviations."
    )


def describe_trend_methods(
    n_used: int,
    n_set_aside: int,
    break_month: str,
    knots: list[str],
    penalty: float,
    likelihood: str,
    phi_cv: float,
    alpha_cv: float,
    tau_days: float,
) -> list[str]:
    """The modelling choices behind a trend report, as read off its fit."""
    sentences = [
        f"The three articles are fitted jointly to {plural(n_used, 'published figure')} "
        f"({plural(n_set_aside, 'figure')} set aside, each with its reason in the published table of figures); "
        "figures for all three articles constrain the sum of the three monthly series.",
        f"Log monthly rate: a pre-break trend, a level step at {format_month(break_month)} "
        f"and slope changes at {', '.join(knots) or 'no knot (too few months after the break)'}, with a ridge penalty "
        f"({penalty:g}) chosen by the Laplace-approximate marginal likelihood; exposure is calendar days.",
        f"Month counts are {'negative binomial' if likelihood == 'negative_binomial' else 'Poisson'} "
        f"(month-to-month variation about {phi_cv:.0f}% of the mean, set by a prior); releases differ from the "
        f"model by about {alpha_cv:.0f}% beyond that (estimated); courts post cases with a time constant of about "
        f"{tau_days:.1f} days (estimated from figures published more than once).",
        "Intervals are quantiles of draws from the Laplace approximation of the penalised likelihood; monthly "
        "counts are drawn conditioned on the published figures, so a month inside a published window cannot "
        "take values the window forbids.",
    ]
    return sentences


def describe_sensitivity_caption(draws_per_refit: int) -> str:
    return (
        "The headline numbers under other defensible choices, each the model fitted again; each with its "
        f"{EFFECT_INTERVAL} from {draws_per_refit} simulations (the first row is this report's fit, as in the table "
        "above). Working days are those of the Russian production calendar, transferred working Saturdays included."
    )


def describe_lag_caption(lag_draws: int) -> str:
    """Plain words for the lag table; the statistics (Poisson fit with Pearson-scaled errors, the
    chi-square rule for the set of lags) are in the methods report."""
    return (
        "Each row compares the request counts with AWOL and desertion cases reaching military courts that many "
        "months later (the model's monthly estimates). “Fits worse than the best lag by” measures how much less "
        "closely that lag follows the requests (zero for the best); lags whose gap is within what chance alone "
        "would produce 95 times in 100 fit about as well. “Requests scale with filings as” is 1 when requests "
        "rise in proportion to filings and below 1 when they rise more slowly, with its 95% interval. The last "
        f"column repeats the comparison on {lag_draws} simulated versions of the court series, so it carries the "
        "uncertainty of the court estimates, which the other columns do not."
    )


def describe_provisional_shading(first: str, last: str, release: pd.Timestamp) -> str:
    return (
        f"Shaded grey: {format_span(first, last)}, which only the release of {format_date(release)} reaches; these "
        "months are provisional until a later release covers them."
    )


def describe_provisional_months(
    first: str,
    last: str,
    release: pd.Timestamp,
    contradiction: tuple[float, str] | None = None,
) -> str:
    """Page one: the latest months said plainly to be provisional (methods.md section 8, point 4).
    `contradiction`: the size of the largest disagreement inside that release and the period it
    concerns, when there is one. Ends with the last confirmed month, named (a reader asked about a
    month neither in the latest confirmed quarter nor provisional; "the table above" could be on
    another page)."""
    text = (
        f"{format_span(first, last)} are provisional: only the release of {format_date(release)} covers them, "
        "and no later one has checked them"
    )
    if contradiction:
        size, period = contradiction
        text += f"; that release disagrees with itself by about {format_about(size)} cases ({period}; see the audit)"
    return text + f". Later releases confirmed the months up to {format_month(pd.Period(first, 'M') - 1)}."


def describe_side_by_side_caption(last_month: str, break_month: str) -> str:
    return (
        f"Modelled monthly cases received by military courts, January 2021 to {format_month(last_month)}, "
        f"with their 95% {RANGE_WORD}s (shaded), one panel per article on its own scale. Dots are published "
        "single months; bars are the monthly average of longer published windows. The dashed vertical line marks "
        f"the mobilisation ({format_date(MOBILISATION)}) and the Criminal Code amendments {_amendments_after()}; the "
        f"model's break is the first month after them, {format_month(break_month)}."
    )


def describe_side_by_side_alt_text(year: int | None, totals: list[tuple[str, float]]) -> str:
    text = "Three stacked line charts of monthly court cases, one for each refusal article"
    if year is not None:
        text += f"; expected cases in {year}: " + ", ".join(f"{label} about {format_count(v)}" for label, v in totals)
    return text + "."


def describe_requests_caption() -> str:
    return (
        "Top: AWOL and desertion cases received by military courts per month (model, 95% prediction interval). "
        "Bottom: requests for help to desert received by Idite Lesom, as published (dots: single months; bars: "
        "monthly average of a window, after subtracting the months published separately), with a log-linear "
        "trend and its 95% confidence band. The shared time axis shows the lead of requests over filings."
    )


def describe_requests_alt_text(first: str, last: str, growth: float) -> str:
    return (
        f"Two stacked charts: court cases for AWOL and desertion, and help requests to Idite Lesom from "
        f"{format_month(first)} to {format_month(last)}, rising about {format_percent(growth)} a month."
    )


def describe_cross_check_caption() -> str:
    return (
        "Each figure published for the three articles together (dot) against the 95% predictive interval of the "
        "model fitted without any such figure, relative to the predicted median. A figure is consistent when it "
        "lies inside the range; a bound (“at least”, “at most”) is consistent when the model meets it more likely "
        "than not, in tension when it meets it with less than even odds, and not consistent when the whole range "
        "lies on the wrong side of it."
    )


def describe_cross_check_alt_text(n_figures: int, n_consistent: int) -> str:
    return (
        f"Interval chart of {n_figures} figures published for all three articles together against the refit's "
        f"predictive intervals; {n_consistent} are consistent."
    )


def describe_summary_methods(n_cross_check: int, requests: tuple[int, int, int, float, int] | None) -> list[str]:
    """`requests`: (counts used, help-request figures, disjoint windows, Pearson dispersion, residual df).
    The dispersion is said as how many times wider than chance the scatter is (its square root)."""
    cross = (
        f"The check of the three articles against the {plural(n_cross_check, 'figure')} published for all of them "
        "together uses a second fit that leaves those figures out; its predictions allow for each figure's late "
        "posting and the way it was counted."
    )
    if requests is None:
        return [cross]
    n_used, n_all, n_windows, scale, df_resid = requests
    return [
        f"Requests: {n_used} of the {plural(n_all, 'help-request figure')} in the ledger are counts of requests "
        "over a period; where periods overlap, the overlap was taken out so that each request is counted once, "
        f"leaving {plural(n_windows, 'period')}.",
        f"The published request counts scatter about {np.sqrt(scale):.1f} times as widely around a steady growth "
        f"line as chance alone would make them ({plural(df_resid, 'degree')} of freedom), and their ranges are "
        "widened by that factor.",
        cross,
    ]


def describe_no_cross_check() -> str:
    return "The ledger has no figure for the three articles together, so there is nothing to cross-check."


def describe_no_requests(reason: str) -> str:
    return f"No comparison: {reason}."


# ----------------------------------------------------------------------------- page one, for readers
# Numbers a journalist can repeat: one rounding rule for every modelled count with its range, one
# name per kind of interval ("range" for a count's 95% prediction interval, "95% interval" for an
# effect), and what the figures cannot tell said in words.

RANGE_WORD = "range"  # a count's 95% prediction interval, in prose
NOT_ESTIMABLE = "not estimable from the published figures"  # an effect failing the identification rule
EFFECT_INTERVAL = "95% interval"  # an effect's interval, in prose


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe_headline_table_caption(label: str) -> str:
    return (
        f"Cases of {label} received by military courts: the model's estimate and its {RANGE_WORD} (95 chances in "
        "100), beside the number published for that period. Published numbers can differ: courts post cases late "
        "and some releases count only part of an article."
    )


def rounding_unit(value: float, lo: float, hi: float) -> int:
    """The unit every number of an estimate with its range is rounded to: a tenth of the range's
    width, down to a power of ten, and at least what keeps three significant figures; never below 1.

    So 9,213 (8,412 to 10,311) is about 9,200 (8,400 to 10,300) and 37 (20 to 60) stays 37 (20 to
    60): no digit claims more precision than the range supports.
    """
    width = float(hi) - float(lo)
    unit = 10 ** max(0, int(np.floor(np.log10(width))) - 1) if width > 0 else 1
    magnitude = abs(float(value))
    if magnitude >= 1:
        unit = max(unit, 10 ** max(0, int(np.floor(np.log10(magnitude))) - 2))
    return int(unit)


def round_estimate(value: float, lo: float, hi: float) -> tuple[int, int, int]:
    """The estimate to the nearest unit; the range outwards (never narrower than computed)."""
    unit = rounding_unit(value, lo, hi)
    return (int(round(value / unit) * unit), int(np.floor(lo / unit) * unit), int(np.ceil(hi / unit) * unit))


def format_about(value: float) -> str:
    """A single number said as "about": two significant figures (801 -> 800, 9,507 -> 9,500)."""
    if abs(value) < 100:
        return format_count(round(value))
    unit = 10 ** (int(np.floor(np.log10(abs(value)))) - 1)
    return format_count(round(value / unit) * unit)


def format_estimate(value: float, lo: float, hi: float) -> str:
    """About 9,200 (8,400 to 10,300)"""
    v, a, b = round_estimate(value, lo, hi)
    return f"about {v:,} ({a:,} to {b:,})"


def format_times(ratio: float, lo: float, hi: float, interval: str = "") -> str:
    """A ratio as a reader repeats it: 1.8 (1.1 to 3.0), two significant figures; `interval`
    names the interval inside the brackets ("1.8 (95% interval 1.1 to 3.0)")."""
    return f"{format_ratio(ratio)} ({interval + ' ' if interval else ''}{format_ratio(lo)} to {format_ratio(hi)})"


def format_ratio(x: float) -> str:
    """Two significant figures as a reader repeats them: 1.8, 25, 241."""
    return f"{x:.1f}" if x < 10 else f"{x:,.0f}"


def _calendar_shape(start, end) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """Whether [start, end] is one calendar "year", whole "months", or neither ("days")."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if start == pd.Timestamp(start.year, 1, 1) and end == pd.Timestamp(start.year, 12, 31):
        return start, end, "year"
    if start.day == 1 and end == end + pd.offsets.MonthEnd(0):
        return start, end, "months"
    return start, end, "days"


def format_period(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """A calendar year as 2024, a quarter as October to December 2024, otherwise day to day."""
    start, end, shape = _calendar_shape(start, end)
    if shape == "year":
        return str(start.year)
    if shape == "months":
        first, last = start.to_period("M"), end.to_period("M")
        if first.year == last.year:
            return f"{first:%B} to {last:%B %Y}" if first != last else f"{first:%B %Y}"
        return f"{first:%B %Y} to {last:%B %Y}"
    return f"{format_date(start)} to {format_date(end)}"


def format_period_short(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """For chart labels: 2023, Mar 2023, Jan–Mar 2023, or 21 Sep 2022–27 Apr 2023."""
    start, end, shape = _calendar_shape(start, end)
    if shape == "year":
        return str(start.year)
    if shape == "months":
        if start.to_period("M") == end.to_period("M"):
            return f"{start:%b %Y}"
        return f"{start:%b}–{end:%b %Y}" if start.year == end.year else f"{start:%b %Y}–{end:%b %Y}"
    return f"{start.day} {start:%b %Y}–{end.day} {end:%b %Y}"


def describe_latest_year(
    label: str, year: int, total: tuple[float, float, float], ratio: tuple[float, float, float] | None
) -> str:
    """The first finding: how many in the latest full year, and against the year before."""
    sentence = (
        f"Military courts received {format_estimate(*total)} {label} cases in {year}; the {RANGE_WORD} is where "
        "the true number lies with 95% probability"
    )
    if ratio is not None:
        value, lo, hi = ratio
        if lo > 1:
            sentence += f". That is {format_times(*ratio)} times as many as in {year - 1}"
        elif hi < 1:
            sentence += f". That is fewer than in {year - 1}: {format_times(*ratio)} times as many"
        else:
            sentence += f", about as many as in {year - 1} (ratio {format_times(*ratio)})"
    return sentence + "."


def describe_latest_quarter(period: str, total: tuple[float, float, float]) -> str:
    return f"In the latest complete quarter, {period}, they received {format_estimate(*total)}."


# Said where page one gives the full posterior's interval instead of the tables' approximation.
APPROXIMATION_NOTE = (
    "the model's uncertainty sampled in full; the quicker approximation behind this report's tables gives"
)


def describe_jump(
    break_month: str,
    ratio: float,
    lo: float,
    hi: float,
    not_estimable_because: str = "",
    sampled: tuple[float, float, float] | None = None,
) -> str:
    """The change at the mobilisation, or plainly that the figures cannot show one (and why, when
    the effect fails the identification rule: then no number is given). `sampled`: the full
    posterior's estimate and interval, where they differ materially from (ratio, lo, hi): then
    they lead, the approximation in brackets."""
    when = (
        f"In {format_month(break_month)}, the first month after mobilisation was announced "
        f"({format_date(MOBILISATION)}) and the Criminal Code was amended to punish these offences harder in wartime "
        f"({format_date(CRIMINAL_CODE_AMENDMENTS)})"
    )
    if not_estimable_because:
        return (
            f"{when}: how much the monthly count changed in that month cannot be estimated from the published "
            f"figures ({not_estimable_because}); read the change over the months that followed instead."
        )
    note = ""
    if sampled is not None:
        note = f"{APPROXIMATION_NOTE} {format_ratio(lo)} to {format_ratio(hi)}"
        ratio, lo, hi = sampled
    if lo <= 1 <= hi:
        if not note:
            return (
                f"{when}, the published figures cannot tell whether the monthly count jumped: the rise came in the "
                "months that followed."
            )
        return (
            f"{when}, the published figures show no clear jump in the monthly count: the best estimate is a factor "
            f"of {format_ratio(ratio)}, but anything from {format_ratio(lo)} to {format_ratio(hi)} fits them (95% "
            f"interval, {note}). The rise came in the months that followed."
        )
    verb = "jumped" if ratio > 1 else "fell"
    if not note:
        return f"{when}, the monthly count {verb} by a factor of {format_times(ratio, lo, hi, EFFECT_INTERVAL)}."
    return (
        f"{when}, the monthly count {verb} by a factor of {format_ratio(ratio)} ({EFFECT_INTERVAL} "
        f"{format_ratio(lo)} to {format_ratio(hi)}, {note})."
    )


def describe_excess_for_readers(
    first: str, last: str, excess: float, lo: float, hi: float, sampled: tuple[float, float, float] | None = None
) -> str:
    """`sampled`: the full posterior's estimate and interval, where they differ materially from
    (excess, lo, hi): then they lead, the approximation in brackets."""
    note = ""
    if sampled is not None:
        _, low, high = round_estimate(excess, lo, hi)
        note = f" ({APPROXIMATION_NOTE} {low:,} to {high:,})"
        excess, lo, hi = sampled
    return (
        f"From {format_span(first, last)} the courts received {format_estimate(excess, lo, hi)} more cases than "
        f"the trend before mobilisation would have produced{note}; the amended Criminal Code counts towards this: "
        "part of the rise is new offences, not only more soldiers prosecuted."
    )


def describe_forecast_for_readers(
    first: str,
    last: str,
    total: tuple[float, float, float],
    latest_release: pd.Timestamp,
    method: str = "local_level",
    level_months: tuple[str, str] | None = None,
) -> str:
    """The forecast, with the date after which nothing is published (a reader who sees a later
    "figures up to" date on the title page, a figure on another subject, must not wonder why those
    months are guessed) and how it continues the series (spec.FORECAST_METHODS)."""
    how = {
        "damped_trend": f"if the trend of the last {plural(FORECAST_SLOPE_MONTHS, 'month')} carries on, flattening out",
        "local_level": (
            f"if cases keep arriving at the rate of {format_span(*level_months)}, the latest months later releases "
            "have confirmed"
            if level_months
            else "if cases keep arriving at the latest confirmed rate"
        ),
        "combination": "taking the average of the recent trend and the latest confirmed rate",
    }[method]
    return (
        f"The latest court figure used was published on {format_date(latest_release)}, so the months from "
        f"{format_month(first)} on are a forecast: {how}, the courts would receive {format_estimate(*total)} cases "
        f"from {format_span(first, last)}."
    )


def reading_box(label: str, article_name: str, vintage: pd.Timestamp, built: pd.Timestamp, title: str) -> list[str]:
    """How to read and cite these numbers, one short paragraph each."""
    return [
        f"What is counted: cases of {label} received by Russia's military courts, as posted on court websites "
        "and counted, mostly by Mediazona. It is not the number of soldiers who committed these offences: a case "
        "reaches a court weeks to months after the offence, and prosecution practice changed over the period.",
        f"Ranges: no monthly count is published, so every number here is a model estimate from the published "
        f"totals. Each comes with a {RANGE_WORD}: the model gives 95 chances in 100 that the true number lies "
        f"within it. Changes (a jump, a ratio, a growth rate) come with a {EFFECT_INTERVAL}, read the same way.",
        "Rounding: each estimate is rounded to what its range supports; “about” a number means near it, not "
        "exactly it.",
        f"Cite as: milcourts research notebooks, “{title}”, built {format_date(built)} from figures published up "
        f"to {format_date(vintage)}. The tables behind this report are published with it.",
    ]


def glossary(break_month: str) -> list[tuple[str, str]]:
    """The few terms that must stay, defined once."""
    return [
        ("case received", "a criminal case registered by a military court, counted when the court receives it"),
        (
            "published figure",
            "a number a newsroom or official source published for some period; every one used is listed in the sources",
        ),
        ("running total", "a count from a fixed start (the mobilisation or the invasion) to the day it was published"),
        ("the break", f"{format_month(break_month)}, the month the model lets the count jump and change its trend"),
        (
            "trend before mobilisation",
            "what the trend up to the break, continued, would have produced (the dotted line in the chart)",
        ),
    ]


# Published minus expected, in standard deviations, beyond which a figure is called far from the
# model: the same limit the residual chart draws and colours by.
RESIDUAL_LIMIT = 2.0


def describe_effects_caption_for_readers(n_draws: int) -> str:
    return (
        f"Each estimate with its {EFFECT_INTERVAL}: the middle 95% of {n_draws:,} simulations of the fitted model. "
        "A jump of 1 would mean no jump; a change per month is how much each month's count grows on the one "
        f"before, on average over the period. “{capitalised(NOT_ESTIMABLE)}” marks a change the figures cannot pin "
        f"down: fitting narrows its uncertainty by less than {100 * (1 - MAX_POSTERIOR_TO_PRIOR_SD):.0f}% from "
        f"what was assumed beforehand, or its "
        f"{EFFECT_INTERVAL} spans more than a factor of {MAX_INTERVAL_FACTOR:g}."
    )


def describe_fit_for_readers(close: int, total: int, far: list[str]) -> str:
    sentence = (
        f"Of the {plural(total, 'exactly published figure')} for this article, the model's expectation is within "
        f"two standard deviations of {format_count(close)}"
    )
    if far:
        return sentence + f"; further off: {format_list(far)}."
    return sentence + "."


def describe_how_estimated(
    n_figures: int, break_month: str, tau_days: float, train_end: pd.Timestamp | None
) -> list[str]:
    """Half a page for a reader: the model in words, and where its full description and checks are."""
    sentences = [
        f"The monthly numbers are estimated by a statistical model fitted to {plural(n_figures, 'published figure')} "
        "for the three articles at once. Each published number, whether a month, a year or a running total, is "
        "treated as the sum of the unknown monthly counts over its period, so every figure constrains the months "
        "it covers, and figures for the three articles together constrain their sum.",
        f"Each article's monthly count follows a trend before the break ({format_month(break_month)}), may jump "
        "at it, and may then grow at a rate that changes every few months; the smaller articles borrow the shape "
        "of AWOL's where their own figures are too few.",
        f"Courts post cases on their websites late: the model estimates how late from periods published more than "
        f"once (most cases appear within about {tau_days:.0f} days). Running totals since the mobilisation are read "
        "on their own counting basis, because early ones counted only the offences the mobilisation law created.",
        "The model, its assumptions and how well it predicts figures it had not seen are set out in the methods "
        "and validation report.",
    ]
    if train_end is not None:
        sentences.append(f"This report uses only the figures published by {format_date(train_end)}.")
    return sentences


def describe_unused_figures(n_unused: int) -> str:
    if n_unused == 0:
        return "Every figure in the ledger is used."
    return (
        f"The ledger holds {plural(n_unused, 'further figure')} that this report does not rest on: they count other "
        "articles or other things (verdicts, persons, requests for help, rates), have no dates, or contradict a "
        "figure published the same day; the ledger audit lists every one with the reason."
    )


# ----------------------------------------------------------------------------- methods report


def format_share_range(row) -> str:
    """A share with its 95% interval, as percentages: 90% (78% to 97%)."""
    return f"{100 * row['estimate']:.0f}% ({100 * row['lower_95']:.0f}% to {100 * row['upper_95']:.0f}%)"


_PLAIN_EFFECTS = (
    ("level rate ratio at the break", "jump at the break (times)"),
    (
        "change in monthly growth after the break (percentage points)",
        "change of growth after the break (points a month)",
    ),
)


def plain_effect(effect: str) -> str:
    growth = re.match(r"monthly growth (\d{4}-\d{2}) to (\d{4}-\d{2})", effect)
    if growth:
        return f"change per month, {format_span(*growth.groups())}"
    excess = re.match(r"excess cases (\d{4}-\d{2}) to (\d{4}-\d{2})", effect)
    if excess:
        return f"cases beyond the pre-break trend, {format_span(*excess.groups())}"
    for technical, plain in _PLAIN_EFFECTS:
        if effect.startswith(technical):
            return plain
    return effect


def _pct_range(est: float, lo: float, hi: float, decimals: int = 0) -> str:
    return f"{100 * est:.{decimals}f}% ({100 * lo:.{decimals}f}% to {100 * hi:.{decimals}f}%)"


@dataclass(frozen=True)
class RevisedRelease:
    """A release whose figures were published again later (model.releases), as the report says it."""

    release: pd.Timestamp
    later: str  # when they were published again, as the table has it (ISO dates)
    pairs: int
    observed: tuple[float, float, float]  # first published over later, with its exact 95% interval
    expected: float  # the same share as the fitted model expects it
    own_lag_days: tuple[float, float, float]
    own_share_posted: tuple[float, float, float]  # of its last days' cases, under its own lag


def describe_release_completeness(
    revised: list[RevisedRelease],
    n_releases: int,
    last_days: int,
    shared_lag_days: float,
    prior_days: tuple[float, float, float],
    latest: tuple[pd.Timestamp, tuple[float, float, float]],
    provisional: tuple[str, str] | None,
) -> list[str]:
    """How complete each release was: measured where a later release republished its figures,
    the model's shared lag elsewhere (model.releases). `prior_days`: the own-lag prior's median
    and 95% range; `latest`: the newest release and its share of the last days' cases posted."""
    paragraphs = []
    if not revised:
        paragraphs.append(
            f"None of the {plural(n_releases, 'release')} was published again later for the same period, so the "
            "ledger cannot measure how complete any release was; the model's lag is its prior."
        )
    for r in revised:
        later = format_list([format_date(pd.Timestamp(d)) for d in r.later.split(", ")])
        paragraphs.append(
            f"The release of {format_date(r.release)} is the only one whose figures were published again for the "
            f"same periods ({plural(r.pairs, 'figure')}, on {later})"
            if len(revised) == 1
            else f"The release of {format_date(r.release)} had {plural(r.pairs, 'figure')} published again on {later}"
        )
        paragraphs[-1] += (
            f": it had shown {_pct_range(*r.observed, decimals=1)} of the later count, and the model expects "
            f"{100 * r.expected:.1f}%. From those figures alone, under a prior that allows weeks (about "
            f"{prior_days[0]:.0f} days, 95 in 100 between {prior_days[1]:.0f} and {prior_days[2]:.0f}), its delay is "
            f"about {r.own_lag_days[0]:.1f} days ({r.own_lag_days[1]:.1f} to {r.own_lag_days[2]:.1f}), against "
            f"{shared_lag_days:.1f} days for the model's single delay: when it was published, courts had posted "
            f"{_pct_range(*r.own_share_posted)} of the cases of its last {last_days} days."
        )
    release, share = latest
    text = (
        f"For every {'other ' if revised else ''}release the model's single delay stands in. The latest, of "
        f"{format_date(release)}, had "
        f"by that delay posted {_pct_range(*share)} of its last {last_days} days' cases."
    )
    if revised:
        gap = max((pd.Timestamp(r.later.split(", ")[-1]) - r.release).days for r in revised)
        text += (
            f" Cases posted later than the second release of a pair ({plural(gap, 'day')} after the first here) show "
            "in no pair"
        )
    else:
        text += " Cases posted months late would show in no figure yet"
    if provisional:
        text += (
            f", and no later release has covered {format_span(*provisional)}: those months stay provisional in "
            "every report"
        )
    paragraphs.append(text + ".")
    return paragraphs


def describe_assumptions(
    month_cv_pct: float,
    lag_days: float,
    lag_days_95: tuple[float, float],
    base_share: float,
    approx_pct: float,
    fitted_lag: tuple[float, float, float] | None = None,
) -> list[str]:
    """What the published figures cannot tell, so the model assumes it, and how. `fitted_lag`: the
    delay the fit found (days, with its 95% interval)."""
    learnt = (
        f"; periods published more than once put it at about {fitted_lag[0]:.1f} days ({fitted_lag[1]:.1f} to "
        f"{fitted_lag[2]:.1f}). Cases posted months late would not show in those pairs, so the months only one "
        "release reaches are marked provisional in every report."
        if fitted_lag
        else "; periods published more than once then inform the delay."
    )
    return [
        f"How much real monthly counts vary around their trend cannot be learnt from a ledger with almost no "
        f"single months. The model assumes about {month_cv_pct:.0f}% from month to month (a prior, not an "
        "estimate); every monthly range is only as good as this assumption, and the ranges of yearly totals "
        "depend on it much less.",
        f"Courts post cases late. Before the data speak, the model expects most cases on court websites within "
        f"about {lag_days:.0f} days (95 in 100 between {lag_days_95[0]:.1f} and {lag_days_95[1]:.0f} days)" + learnt,
        f"Early running totals since the mobilisation counted only the offences the mobilisation law created. "
        f"The model expects them to count about {100 * base_share:.0f}% of the cases from 2023 on and less in "
        "late 2022, and estimates both shares for each article.",
        f"A figure published as “about” a number is read as that number with a typical error of "
        f"{approx_pct:.0f}%; “at least” and “more than” figures are lower bounds, “at most” figures upper bounds.",
    ]


def describe_forecast_choice(used: str, chosen: str | None, coverage_target: tuple[float, float]) -> str:
    """The rule that picks the forecast, and whether the reports use what it picks."""
    rule = (
        f"The rule: among the forecasts whose 95% ranges covered between {100 * coverage_target[0]:.0f}% and "
        f"{100 * coverage_target[1]:.0f}% of every scored figure, the one with the lowest mean interval score on "
        "the figures reaching past the data."
    )
    if chosen is None or chosen == used:
        return f"{rule} It picks {used}, which every report uses."
    return f"{rule} It picks {chosen}, but the reports use {used}: the model should be refitted with the pick."


def describe_break_profile(model_break: str, best: str, inside: list[str], first: str, last: str) -> str:
    text = (
        f"The model places the break at {format_month(model_break)}, chosen before looking at the data. Asked of "
        f"the data instead, refitting with the break at every month from {format_month(first)} to "
        f"{format_month(last)}, the best fit is {format_month(best)}"
    )
    others = [m for m in inside if m != best]
    if others:
        return text + f"; {format_list([format_month(m) for m in others])} fit about as well (the 95% set)."
    return text + ", and no other month fits about as well."


def describe_break_caption() -> str:
    return (
        "For each candidate month, how much worse the model fits the published figures with its break there than "
        "at the best month (in log-likelihood). Months below the dashed line fit about as well as the best one "
        "(a 95% likelihood-ratio set); the line in colour is the model's own break."
    )


def describe_break_alt_text(n_months: int, best: str) -> str:
    return f"Bar chart over {plural(n_months, 'candidate break month')}; the best fit is {format_month(best)}."


def describe_alternatives_caption() -> str:
    return (
        "The composite-link model (the one every report uses) beside a segmented negative binomial regression "
        "fitted to reconstructed months (pooled over simulations with Rubin's rules) and a structural time series "
        "fitted to the median reconstruction. The other two see the months only through the model, so they check "
        f"the shape of the estimate, not the data; each with its {EFFECT_INTERVAL}."
    )


def describe_identification_caption() -> str:
    return (
        "A correlation near −1 or +1 means the figures before the break cannot separate the earlier trend from "
        f"the jump, so neither is estimated on its own. The shares come with their {EFFECT_INTERVAL}s."
    )


def describe_simulation_caption() -> str:
    return (
        "How often the 95% intervals covered the true jump and the true change of trend in ledgers simulated with "
        "the real ledger's pattern of published figures; and how often a jump was reported when there was none "
        "(the second row: the lower, the better)."
    )


def describe_summary_table_caption() -> str:
    return (
        f"Cases received by military courts: the model's estimate with its {RANGE_WORD} (95 chances in 100 that the "
        "true number lies within it), per article and for the three together. Each article's report sets these "
        "beside the numbers published for the same periods."
    )


def describe_changes_caption(n_draws: int) -> str:
    return (
        f"Each with its {EFFECT_INTERVAL} from {n_draws:,} simulations of the fitted model; the same numbers as each "
        "article's own report. A jump of 1 would mean no jump at the break."
    )


def describe_cross_check_for_readers(total: int, in_tension: list[str], inconsistent: list[str]) -> str:
    agreeing = total - len(in_tension) - len(inconsistent)
    sentence = (
        f"Fitted again without the {plural(total, 'figure')} published for the three articles together, the model's "
        f"sum of the three agrees with {format_count(agreeing)} of them"
    )
    if in_tension:
        sentence += f"; it is in tension with {format_list(in_tension)}, a bound it meets with less than even odds"
    if inconsistent:
        sentence += f"; it contradicts {format_list(inconsistent)}"
    return sentence + "."


def describe_methods_pointer() -> str:
    return (
        "The model, its assumptions and how well it predicts figures it had not seen are set out in the methods "
        "and validation report."
    )


def describe_posterior_check(
    chains: int,
    draws_per_chain: int,
    max_rhat: float,
    min_ess: float,
    divergences: int,
    is_converged: bool,
    n_agree: int,
    n_differ: int,
    n_total: int,
    typical_error: float,
    error_multiple: float,
    agreement_share: float,
    median_width_ratio: float,
    widest: tuple[str, str, float],
    understated: list[tuple[str, float]],
) -> list[str]:
    """The full-posterior check in words: how it was run, whether the sampler can be trusted, how
    many ranges agree, and where and by how much the sampled ones differ."""
    how = (
        "Every range in the reports comes from a normal approximation around the best fit, which is quick "
        "but can be too narrow where the uncertainty is lopsided. As a check, the model's uncertainty was "
        f"also sampled in full: {chains} independent chains of {draws_per_chain:,} draws each after a warm-up "
        "(the No-U-Turn sampler, on exactly the probability the fit maximises, with the same smoothing)."
    )
    if is_converged:
        how += (
            f" The chains agree with one another (largest R-hat, the usual measure of that, {max_rhat:.3f}; at most "
            f"1.01 is required; at "
            f"least {min_ess:,.0f} effectively independent draws for every parameter; "
            f"{'no' if divergences == 0 else divergences} failed steps)."
        )
    else:
        how += (
            f" The sampler did not pass its own checks (largest R-hat {max_rhat:.3f}, fewest effectively "
            f"independent draws {min_ess:,.0f}, {divergences} failed steps): the comparison below is indicative only."
        )
    name, quantity, ratio = widest
    share = f"{100 * agreement_share:.0f}%"
    n_close = n_total - n_agree - n_differ
    multiple = "twice" if error_multiple == 2 else f"{error_multiple:g} times"
    finding = (
        f"Of the {n_total} ranges compared (effects, yearly totals and single months; all are in this report's "
        f"data), {n_agree} {'agrees' if n_agree == 1 else 'agree'}: each end within {share} of the range's width, "
        f"even allowing for the chance variation of a finite number of draws ({multiple} its standard error, "
        f"which is typically {100 * typical_error:.0f}% of a range's width); "
        f"{n_differ} {'differs' if n_differ == 1 else 'differ'} by more than {share} even allowing for it"
        + (
            "."
            if n_close == 0
            else f"; for the other {n_close} the difference is within that chance variation, too close to call with "
            "this many draws."
        )
    )
    if median_width_ratio > 1 + agreement_share:
        finding += (
            f" Sampled in full, the ranges are typically {100 * (median_width_ratio - 1):.0f}% wider than the "
            f"reports', and up to {ratio:.1f} times as wide ({name}, {quantity}): the reports' ranges understate "
            "the uncertainty by that much. Where that changes what a headline says, the report's first page gives "
            "the sampled range."
        )
    elif median_width_ratio < 1 - agreement_share:
        finding += f" Sampled in full, the ranges are typically {100 * (1 - median_width_ratio):.0f}% narrower."
    else:
        finding += " Typical widths agree within a tenth."
    if understated:
        finding += (
            " The approximation understates most the uncertainty of "
            + format_list([f"{words} (spread {ratio:.1f} times as wide when sampled)" for words, ratio in understated])
            + ": it treats them as spread evenly around their most likely values, while the figures also allow "
            "much larger ones."
        )
    return [how, finding]


def describe_posterior_table_caption() -> str:
    return (
        "The reports' 95% ranges beside the fully sampled ones, for the headline numbers. Widths of the jumps are "
        "compared as ratios (1 to 3 is as wide as 2 to 6), every other range as it reads."
    )


def describe_sampled_notes(notes: list[tuple[str, str]]) -> str:
    """Appended to a table caption: the effects whose range, sampled in full, is materially wider
    than the approximation the table prints ("" when there are none)."""
    if not notes:
        return ""
    return (
        " Sampled in full rather than approximated, the model's uncertainty is materially wider for "
        + "; ".join(f"{what}: {sampled}" for what, sampled in notes)
        + " (see the report on how the numbers are estimated and checked)."
    )
