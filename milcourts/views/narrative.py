"""Sentences generated from computed numbers, so the prose changes when the data does.

No figure in a report is typed by hand: each sentence here is a function of its inputs, and the
tests pin the exact wording for given inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from milcourts.views.audit import LedgerAudit
from milcourts.vocabulary import ARTICLE_LABELS


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
    sentences.append(f"{plural(len(filings), 'figure')} count {view.series.replace('_', ' ')} ({'; '.join(parts)}).")
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
        listed = "; ".join(f"{format_count(n)} {k.replace('_', ' ')}" for k, n in kinds.items())
        sentences.append(
            f"{plural(len(view.conflicts), 'set of figures', 'sets of figures')} cannot all hold on one "
            f"counting base ({listed}); they are listed below and kept, not averaged away."
        )
    else:
        sentences.append("No set of figures contradicts another on the same counting base.")
    return sentences


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
        f"Each row is one usable {view.series.replace('_', ' ')} figure on {view.unit}, each column a "
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


def format_percent(value: float) -> str:
    """Growth rates: one decimal below 10%, whole numbers above; a minus sign, never a hyphen."""
    text = f"{abs(value):.1f}%" if abs(value) < 10 else f"{abs(value):.0f}%"
    return ("−" if value < 0 and text not in ("0.0%", "0%") else "") + text


def format_signed(value: float, digits: int = 2) -> str:
    """-0.81 -> −0.81 (a typographic minus, as in the growth rates)."""
    return f"{value:.{digits}f}".replace("-", "−")


def format_ratio(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def format_month(month: str | pd.Period) -> str:
    """2023-01 -> January 2023."""
    return f"{pd.Period(month, 'M'):%B %Y}"


def format_span(first: str, last: str) -> str:
    return format_month(first) if first == last else f"{format_month(first)} to {format_month(last)}"


def describe_growth(
    label: str,
    before: float,
    before_lo: float,
    before_hi: float,
    after: float,
    after_lo: float,
    after_hi: float,
    after_first: str,
    after_last: str,
) -> str:
    """The fastest growth after the break against growth before it."""
    verb = "grew" if after >= 0 else "fell"
    return (
        f"{label[0].upper() + label[1:]} cases reaching military courts {verb} by {format_percent(abs(after))} a "
        f"month (95% CI {format_percent(after_lo)} to {format_percent(after_hi)}) in "
        f"{format_span(after_first, after_last)}, the fastest period after the mobilisation, against "
        f"{format_percent(before)} a month (95% CI {format_percent(before_lo)} to {format_percent(before_hi)}) "
        "before it."
    )


def describe_latest_growth(value: float, lo: float, hi: float, first: str, last: str) -> str:
    direction = "still growing" if lo > 0 else ("falling" if hi < 0 else "no longer clearly growing")
    return (
        f"In the latest period the data cover, {format_span(first, last)}, the monthly change was "
        f"{format_percent(value)} (95% CI {format_percent(lo)} to {format_percent(hi)}): {direction}."
    )


def describe_level_step(break_month: str, ratio: float, lo: float, hi: float) -> str:
    sentence = (
        f"At the break in {format_month(break_month)} the monthly rate changed by a factor of "
        f"{format_ratio(ratio)} (95% CI {format_ratio(lo)} to {format_ratio(hi)})"
    )
    if lo <= 1 <= hi:
        return (
            sentence
            + "; the figures cannot tell a jump from no jump, so the rise is carried by the growth that followed."
        )
    return sentence + "."


def describe_excess(first: str, last: str, excess: float, lo: float, hi: float) -> str:
    return (
        f"From {format_span(first, last)}, about {format_count(excess)} more cases "
        f"(95% CI {format_count(lo)} to {format_count(hi)}) reached the courts than the pre-mobilisation "
        "trend would have produced."
    )


def describe_forecast(months: int, first: str, last: str, expected: float, lo: float, hi: float) -> str:
    return (
        f"For the {plural(months, 'month')} after the data end ({format_span(first, last)}) the model "
        f"expects about {format_count(expected)} cases (95% prediction interval {format_count(lo)} to "
        f"{format_count(hi)}), if the recent trend continues, slowing."
    )


def describe_identification(correlation: float, n_pre_break: int) -> str | None:
    """Said only when the pre-break figures cannot separate the pre-trend from the jump."""
    if abs(correlation) < 0.7:
        return None
    return (
        f"Before the break the ledger has only {plural(n_pre_break, 'figure')} for this article, so the "
        f"pre-break trend and the jump are hard to tell apart (their estimates correlate at "
        f"{format_signed(correlation)} across draws): read the jump together with the growth that followed, "
        "not on its own."
    )


def describe_fit(inside: int, total: int, outside_ids: list[str]) -> str:
    sentence = (
        f"The model reproduces {format_count(inside)} of {plural(total, 'exact published figure')} for "
        "this article within their 95% intervals"
    )
    if outside_ids:
        return sentence + f"; the exceptions ({', '.join(outside_ids)}) are marked in the residual chart."
    return sentence + "."


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


def describe_year_total(year: int, total: dict, previous: dict | None) -> str:
    """`total`/`previous`: predict_total dicts (estimate, lower_95, upper_95) for all three articles."""
    sentence = (
        f"In {year} military courts received an estimated {format_count(total['estimate'])} cases under the "
        f"three refusal articles (95% prediction interval {format_count(total['lower_95'])} to "
        f"{format_count(total['upper_95'])})"
    )
    if previous is not None:
        sentence += (
            f", against {format_count(previous['estimate'])} ({format_count(previous['lower_95'])} to "
            f"{format_count(previous['upper_95'])}) in {year - 1}"
        )
    return sentence + "."


def describe_shares(shares: list[tuple[str, float, float, float]]) -> str:
    """(label, share %, lower, upper) per article, the first the largest."""
    (label, share, lo, hi), *rest = shares
    parts = [f"{other} {format_share(s)} ({format_share(a)} to {format_share(b)})" for other, s, a, b in rest]
    return (
        f"{label[0].upper() + label[1:]} made up {format_share(share)} of them (95% interval {format_share(lo)} to "
        f"{format_share(hi)}), " + format_list(parts) + "."
    )


def describe_cross_check(inside: int, total: int, outside_ids: list[str]) -> str:
    sentence = (
        f"Refitted without the {plural(total, 'figure')} published for the three articles together, the "
        f"model's sum of the articles is consistent with {format_count(inside)} of them (inside their 95% "
        "prediction intervals)"
    )
    if outside_ids:
        verb = "falls" if len(outside_ids) == 1 else "fall"
        return sentence + f"; {format_list(outside_ids)} {verb} outside."
    return sentence + "."


def describe_requests_growth(
    first: str, last: str, growth: float, lo: float, hi: float, filings: float, filings_lo: float, filings_hi: float
) -> str:
    verb = "grew" if growth >= 0 else "fell"
    return (
        f"Requests for help to desert received by Idite Lesom {verb} by {format_percent(abs(growth))} a month "
        f"(95% CI {format_percent(lo)} to {format_percent(hi)}) from {format_span(first, last)}, against "
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
        robustness = f"the best lag in {100 * share_of_draws:.0f}% of the court model's draws"
    else:
        robustness = (
            f"yet the best in only {100 * share_of_draws:.0f}% of the court model's draws, against "
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


def describe_effects_caption(methods: list[str]) -> str:
    text = "Effects of the mobilisation break with 95% intervals"
    return text + (f"; every interval: {methods[0]}." if len(methods) == 1 else ", and how each interval was made.")


def describe_trend_caption(n_windows: int, n_running: int, break_month: str, forecast_from: str | None) -> str:
    text = (
        f"Top: expected monthly cases with 80% and 95% prediction intervals, and "
        f"{plural(n_windows, 'published figure')} drawn as a point (one month) or a bar at the "
        f"monthly average of its window. Bottom: {plural(n_running, 'published running total')} "
        f"since 21 September 2022 against the model in their counting base. The dashed vertical line is the "
        f"break ({format_month(break_month)})."
    )
    if forecast_from:
        text += f" Months from {format_month(forecast_from)} are a forecast (lighter band, dashed line)."
    return text


def describe_trend_alt_text(label: str, first: str, last: str, peak: float, peak_month: str) -> str:
    return (
        f"Line chart of modelled monthly {label} cases from {format_month(first)} to {format_month(last)}, "
        f"peaking at about {format_count(peak)} in {format_month(peak_month)}, "
        "with published figures overlaid and running totals in a lower panel."
    )


def describe_residual_caption(n_used: int) -> str:
    return (
        f"Standardised residual of each of the {plural(n_used, 'figure')} used for this article "
        "(published minus expected as published, over its standard deviation); dashed lines at ±2. "
        "For a lower or upper bound the residual is zero unless the fit breaks it."
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
    train_end: pd.Timestamp | None,
) -> list[str]:
    """The modelling choices behind a trend report, as read off its fit."""
    sentences = [
        f"The three articles are fitted jointly to {plural(n_used, 'published figure')} "
        f"({plural(n_set_aside, 'figure')} set aside, each with its reason in fit_to_ledger.csv); "
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
    if train_end is not None:
        sentences.append(f"Fitted only on figures published by {format_date(train_end)}.")
    return sentences


def describe_sensitivity_caption(draws_per_refit: int) -> str:
    return (
        "Headline effects under other defensible choices, each a full refit; medians with 95% intervals "
        f"from {draws_per_refit} parameter draws per refit (the first row is the reported fit, as in the "
        "tables above). Working days are those of the Russian production calendar, transferred working "
        "Saturdays included."
    )


def describe_headline_caption(n_draws: int) -> str:
    return (
        "Cases received per year: modelled totals with 95% prediction intervals. Level ratio and growth: "
        f"posterior medians with 95% intervals from {n_draws:,} draws of the joint fit "
        "(the same numbers as each article's own report)."
    )


def describe_lag_caption(lag_draws: int) -> str:
    return (
        "For each lag, log requests = constant + elasticity × log court filings that many months later "
        "(AWOL and desertion, model means), fitted to the disjoint request windows by Poisson likelihood "
        "with Pearson-scaled (quasi-Poisson) standard errors and t intervals. The 95% set holds the lags whose "
        "deviance is within the chi-square 95% point, times the best lag's scale, of the lowest. An elasticity "
        "of one means requests proportional to filings. The last column repeats the comparison on "
        f"{lag_draws} draws of the court model, so it carries that model's uncertainty, which the 95% set does not."
    )


def describe_side_by_side_caption(last_month: str, break_month: str) -> str:
    return (
        f"Modelled monthly cases received by military courts, January 2021 to {format_month(last_month)}, "
        "with 95% prediction intervals (shaded), one panel per article on its own scale. Dots are published "
        "single months; bars are the monthly average of longer published windows. The dashed line marks the "
        f"break in {format_month(break_month)}."
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
        "model fitted without any such figure, relative to the predicted median; green dots are consistent, orange "
        "are not. Bounds (at least / at most) are consistent unless the whole interval lies on the wrong side."
    )


def describe_cross_check_alt_text(n_figures: int, n_consistent: int) -> str:
    return (
        f"Interval chart of {n_figures} figures published for all three articles together against the refit's "
        f"predictive intervals; {n_consistent} are consistent."
    )


def describe_summary_methods(n_cross_check: int, requests: tuple[int, int, int, float, int] | None) -> list[str]:
    """`requests`: (counts used, help-request figures, disjoint windows, Pearson dispersion, residual df)."""
    cross = (
        f"The cross-check refit drops {plural(n_cross_check, 'all-article figure')} and keeps "
        "every other figure; its predictions include the reporting lag and counting base of each figure as published."
    )
    if requests is None:
        return [cross]
    n_used, n_all, n_windows, scale, df_resid = requests
    return [
        f"Requests: {plural(n_used, 'published count')} of the {n_all} help-request figures in the ledger "
        f"are counts of requests in a window; nested ones were made disjoint, giving {plural(n_windows, 'window')}.",
        f"The request trend's Pearson dispersion is {scale:.1f} on {plural(df_resid, 'residual degree')} "
        "of freedom: the published months scatter well beyond Poisson noise around a straight log-line, and the "
        "intervals are widened by that factor's square root.",
        cross,
    ]


def describe_no_cross_check() -> str:
    return "The ledger has no figure for the three articles together, so there is nothing to cross-check."


def describe_no_requests(reason: str) -> str:
    return f"No comparison: {reason}."
