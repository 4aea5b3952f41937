"""Everything the summary report shows: the three articles side by side, the all-articles
cross-check, and the requests for help to desert against court filings.

The joint fit is the same one the per-article reports use (same request, so the fit stage stores
it once). The cross-check is out of sample: the model is refitted without any figure published
for the three articles together, and the sum of the three articles is then scored against those
figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from milcourts import paths
from milcourts.checks.validation import CONSISTENT, IN_TENSION, INCONSISTENT, bound_met_share, verdict
from milcourts.inputs.ledger import load_ledger
from milcourts.model.requests import (
    RequestsTrend,
    TooFewRequestFigures,
    filings_growth_percent,
    fit_requests_trend,
    lag_comparison,
    request_figures,
)
from milcourts.model.simulate import Draws, article_rows, published_figure_draws
from milcourts.model.spec import ModelSpec
from milcourts.products import public
from milcourts.products.needs import summary_requests
from milcourts.products.stage import FitProducts, load_or_fit
from milcourts.views import narrative, plotting, reporting, trend
from milcourts.views.trend import effect_value, growth_segments, is_running_total, sources_for
from milcourts.vocabulary import ALL_ARTICLES, ARTICLE_LABELS, ARTICLES, DEFAULT_BREAK_MONTH

# Idite Lesom helps soldiers leave their units: the court series that counts them is AWOL and desertion.
COMPARISON_ARTICLES = ("337", "338")
CROSS_CHECK_SEED = 20240618
# Phrases of the report's prose that link to the other reports.
LINKS = trend.LINKS


@dataclass
class SummaryAnalysis:
    products: FitProducts  # the joint fit (shared with the trend reports)
    ledger: pd.DataFrame
    cross_check: pd.DataFrame  # all-article figures against the fit without them
    requests: RequestsTrend | None  # None when the ledger has too few request counts
    lags: pd.DataFrame | None  # lag_comparison
    filings_growth: tuple[float, float, float] | None  # AWOL + desertion over the requests' months, percent
    requests_missing: str = ""  # why there is no requests section, when there is none

    @property
    def spec(self) -> ModelSpec:
        return self.products.request.spec

    @property
    def draws(self) -> Draws:
        return self.products.draws

    @property
    def outputs(self) -> dict[str, pd.DataFrame]:
        """The joint fit's tables (data/processed/fits/.../*.csv)."""
        return self.products.tables


def _cross_check(without: FitProducts, targets: pd.DataFrame) -> pd.DataFrame:
    """Each all-article figure against the predictive interval of the fit that never saw one."""
    draws = without.draws
    rng = np.random.default_rng(CROSS_CHECK_SEED)
    rows = []
    for r in targets.itertuples():
        predicted = published_figure_draws(
            draws, ALL_ARTICLES, r.period_start, r.period_end, r.assumed_source_date, r.value_qualifier, rng
        )
        median, lo, hi = np.quantile(predicted, [0.5, 0.025, 0.975])
        said = verdict(r.value, r.value_qualifier, predicted)
        rows.append(
            {
                "figure_id": r.figure_id,
                "period_start": r.period_start,
                "period_end": r.period_end,
                "source_date": r.source_date,
                "value": r.value,
                "value_qualifier": r.value_qualifier,
                "predicted_median": median,
                "lower_95": lo,
                "upper_95": hi,
                "bound_met_share": bound_met_share(r.value, r.value_qualifier, predicted),
                "verdict": said,
                "is_covered": said == CONSISTENT,
            }
        )
    return pd.DataFrame(rows)


def filings_expected(draws: Draws, articles: tuple[str, ...]) -> tuple[np.ndarray, pd.Series]:
    """Expected monthly cases of the articles together: per draw, and their mean by month."""
    rows = sorted({row for article in articles for row in article_rows(article)})
    per_draw = draws.mu[:, rows, :].sum(axis=1)
    return per_draw, pd.Series(per_draw.mean(axis=0), index=draws.months)


LAG_DRAWS = 100  # court-model draws the lag comparison is repeated on (about 3 s)


def _draw_subset(per_draw: np.ndarray, months: pd.PeriodIndex) -> pd.DataFrame:
    """Evenly spaced draws (they are already random, so this is a fixed, reproducible sample)."""
    index = np.linspace(0, len(per_draw) - 1, min(LAG_DRAWS, len(per_draw))).astype(int)
    return pd.DataFrame(per_draw[index], columns=months)


def run_summary(
    ledger_csv: str | Path,
    break_month: str = DEFAULT_BREAK_MONTH,
    forecast_months: int = 6,
    likelihood: str = "negative_binomial",
    max_lag_months: int = 6,
) -> SummaryAnalysis:
    """The summary's fits (stored by the fit stage, or fitted here), the cross-check and the
    comparison with help requests."""
    if isinstance(max_lag_months, bool) or not isinstance(max_lag_months, int) or not 0 <= max_lag_months <= 12:
        raise ValueError(
            f"max_lag_months must be a whole number from 0 to 12, got {max_lag_months!r} "
            f"({type(max_lag_months).__name__})"
        )
    ledger = load_ledger(paths.resolve(ledger_csv))
    main, without = load_or_fit(summary_requests(ledger, break_month, forecast_months, likelihood))
    figures = main.fitted.obs.figures
    targets = figures[(figures["article"] == ALL_ARTICLES) & figures["is_used"]]
    cross_check = _cross_check(without, targets)
    try:
        requests = fit_requests_trend(ledger)
    except TooFewRequestFigures as error:
        return SummaryAnalysis(
            products=main,
            ledger=ledger,
            cross_check=cross_check,
            requests=None,
            lags=None,
            filings_growth=None,
            requests_missing=str(error),
        )
    per_draw, mean_by_month = filings_expected(main.draws, COMPARISON_ARTICLES)
    months = requests.windows.months
    return SummaryAnalysis(
        products=main,
        ledger=ledger,
        cross_check=cross_check,
        requests=requests,
        lags=lag_comparison(requests.windows, mean_by_month, max_lag_months, _draw_subset(per_draw, main.draws.months)),
        filings_growth=filings_growth_percent(per_draw, main.draws.months, months[0], months[-1]),
    )


# ----------------------------------------------------------------------------- numbers for the text


def year_totals(analysis: SummaryAnalysis, year: int) -> dict[str, dict]:
    """Per article: the year's expected total (the sum of the published monthly rows) and its 95%
    prediction interval, from the yearly_totals table the report publishes."""
    yearly = analysis.outputs["yearly_totals"]
    rows = yearly[yearly["year"] == year].set_index("article")
    return {
        article: {
            "estimate": rows.loc[article, "expected"],
            "lower_95": rows.loc[article, "lower_95"],
            "upper_95": rows.loc[article, "upper_95"],
        }
        for article in (*ARTICLES, ALL_ARTICLES)
    }


def year_shares(analysis: SummaryAnalysis, year: int) -> pd.DataFrame:
    """Each article's share of the year's cases, per draw: median and 95% interval (percent)."""
    draws = analysis.draws
    in_year = np.asarray(draws.months.year == year)
    totals = draws.counts[:, :, in_year].sum(axis=2)
    shares = 100 * totals / totals.sum(axis=1, keepdims=True)
    q = np.quantile(shares, [0.5, 0.025, 0.975], axis=0)
    return pd.DataFrame({"article": ARTICLES, "share": q[0], "lower_95": q[1], "upper_95": q[2]})


def requests_span(analysis: SummaryAnalysis) -> tuple[str, str]:
    months = analysis.requests.windows.months
    return str(months[0]), str(months[-1])


def page_one_heading(analysis: SummaryAnalysis) -> str:
    return "The three articles: how many cases, and is it rising?"


def headline_table(analysis: SummaryAnalysis) -> pd.DataFrame:
    """Page one: cases received in each full year and the latest complete quarter, per article and
    for the three together, each with its range."""
    rows = []
    for label, start, end in trend.headline_periods(analysis.draws, analysis.products.fitted.obs.pinned_end):
        row = {"period": label}
        for article in (*ARTICLES, ALL_ARTICLES):
            name = "all three" if article == ALL_ARTICLES else narrative.capitalised(ARTICLE_LABELS[article])
            row[name] = narrative.format_estimate(*trend.period_estimate(analysis.products, article, start, end))
        rows.append(row)
    return pd.DataFrame(rows)


def headline_caption(analysis: SummaryAnalysis) -> str:
    return narrative.describe_summary_table_caption()


def changes_table(analysis: SummaryAnalysis) -> pd.DataFrame:
    """Per article: the jump at the break, the fastest growth after it, and the cases beyond the
    trend before mobilisation; the same numbers as each article's own report."""
    effects = analysis.outputs["effects"]
    rows = []
    for article in ARTICLES:
        own = effects[effects["article"] == article]
        step = effect_value(own, "level rate ratio at the break")
        segments = growth_segments(own)
        after = trend.estimable_after(segments, analysis.spec.break_month)
        fastest = after.loc[after["estimate"].idxmax()]
        fastest_row = own[own["effect"].str.contains(f"{fastest['first_month']} to {fastest['last_month']}")].iloc[0]
        excess = effect_value(own, "excess cases")
        rows.append(
            {
                "article": narrative.capitalised(ARTICLE_LABELS[article]),
                "jump at the break (times)": trend.times_text(step),
                "fastest growth after the break": (
                    f"{narrative.format_percent(fastest_row['estimate'], signed=True)} a month "
                    f"({narrative.format_percent(fastest_row['lower_95'], signed=True)} to "
                    f"{narrative.format_percent(fastest_row['upper_95'], signed=True)}), "
                    f"{narrative.format_span(fastest['first_month'], fastest['last_month'])}"
                ),
                "cases beyond the trend before mobilisation": narrative.format_estimate(
                    excess["estimate"], excess["lower_95"], excess["upper_95"]
                ),
            }
        )
    return pd.DataFrame(rows)


def changes_caption(analysis: SummaryAnalysis) -> str:
    return narrative.describe_changes_caption(analysis.spec.n_draws) + narrative.describe_sampled_notes(
        trend.sampled_notes(analysis.products, list(ARTICLES))
    )


def key_findings(analysis: SummaryAnalysis) -> list[str]:
    """Page one in sentences: the latest full year for the three together and each article's
    share, the cross-check, the requests for help."""
    sentences = []
    years = trend.full_years(analysis.draws)
    if years:
        year = years[-1]
        start, end = pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)
        total = trend.period_estimate(analysis.products, ALL_ARTICLES, start, end)
        ratio = trend.year_ratio(analysis.draws, ALL_ARTICLES, year) if year - 1 in years else None
        sentences.append(narrative.describe_latest_year("AWOL, desertion and refusing-orders", year, total, ratio))
        shares = year_shares(analysis, year)
        sentences.append(
            narrative.describe_shares(
                [(ARTICLE_LABELS[r.article], r.share, r.lower_95, r.upper_95) for r in shares.itertuples()]
            )
        )
    provisional = trend.provisional_sentence(analysis.products)
    if provisional:
        sentences.append(provisional)
    check = analysis.cross_check
    if len(check):
        sentences.append(
            narrative.describe_cross_check_for_readers(
                len(check),
                [trend.figure_words(r) for _, r in check[check["verdict"] == IN_TENSION].iterrows()],
                [trend.figure_words(r) for _, r in check[check["verdict"] == INCONSISTENT].iterrows()],
            )
        )
    if analysis.requests is not None:
        first, last = requests_span(analysis)
        sentences.append(
            narrative.describe_requests_growth(
                first, last, *analysis.requests.growth_percent(), *analysis.filings_growth
            )
        )
    return sentences  # the lead/lag comparison is said in its own section, with its caveats


def reading_box(analysis: SummaryAnalysis) -> tuple[list[str], list[tuple[str, str]]]:
    return (
        narrative.reading_box(
            "AWOL, desertion and refusing orders",
            "",
            analysis.ledger["source_date"].max(),
            reporting.build_date(),
            "Refusing to fight: the three articles side by side",
        ),
        narrative.glossary(analysis.spec.break_month),
    )


def trend_only_deviance(analysis: SummaryAnalysis) -> float:
    return analysis.requests.fit.deviance


def lag_sentence(analysis: SummaryAnalysis) -> str:
    lags = analysis.lags
    best = lags.loc[lags["is_best"]].iloc[0]
    modal = lags.loc[lags["share_of_draws_best"].idxmax()]
    in_set = lags.loc[lags["is_in_95_set"], "lag_months"].astype(int).tolist()
    return narrative.describe_lag(
        int(best["lag_months"]),
        in_set,
        float(best["deviance"]),
        trend_only_deviance(analysis),
        len(analysis.requests.windows.value),
        float(best["share_of_draws_best"]),
        int(modal["lag_months"]),
        float(modal["share_of_draws_best"]),
    )


# ----------------------------------------------------------------------------- tables


def cross_check_table(analysis: SummaryAnalysis) -> pd.DataFrame:
    check = analysis.cross_check
    qualifier = {"at_least": "at least ", "at_most": "at most ", "approx": "about "}

    def said(row) -> str:
        if row["verdict"] == IN_TENSION:
            return f"in tension: the model gives it {100 * row['bound_met_share']:.0f}%"
        return {CONSISTENT: "yes", INCONSISTENT: "no"}[row["verdict"]]

    return pd.DataFrame(
        {
            "published figure": [trend.figure_words(r) for _, r in check.iterrows()],
            "value": [
                qualifier.get(q, "") + narrative.format_count(v)
                for v, q in zip(check["value"], check["value_qualifier"])
            ],
            "model without it: middle and range (95%)": [
                f"{narrative.format_count(m)} ({narrative.format_count(lo)} to {narrative.format_count(hi)})"
                for m, lo, hi in zip(check["predicted_median"], check["lower_95"], check["upper_95"])
            ],
            "consistent?": [said(r) for _, r in check.iterrows()],
        }
    )


def cross_check_scores(analysis: SummaryAnalysis) -> pd.DataFrame:
    """The cross-check in the shape of the validation chart, labelled by period."""
    check = analysis.cross_check.copy()
    check["label"] = [narrative.format_period_short(s, e) for s, e in zip(check["period_start"], check["period_end"])]
    return check


def request_windows_table(analysis: SummaryAnalysis) -> pd.DataFrame:
    windows = analysis.requests.windows
    fitted = analysis.requests.fit.expected
    return pd.DataFrame(
        {
            "months": windows.label,
            "requests": [narrative.format_count(v) for v in windows.value],
            "trend (fitted)": [narrative.format_count(v) for v in fitted],
        }
    )


def lag_table(analysis: SummaryAnalysis) -> pd.DataFrame:
    lags = analysis.lags
    return pd.DataFrame(
        {
            "court filings taken": [
                f"{narrative.plural(k, 'month')} later" if k else "the same month" for k in lags["lag_months"]
            ],
            "fits worse than the best lag by": [f"{v:.1f}" for v in lags["deviance_above_best"]],
            "requests scale with filings as (1 = in proportion)": [
                f"{e:.2f} ({lo:.2f} to {hi:.2f})".replace("-", "−")
                for e, lo, hi in zip(lags["elasticity"], lags["elasticity_lower_95"], lags["elasticity_upper_95"])
            ],
            "among the lags that fit about as well as the best": np.where(lags["is_in_95_set"], "yes", "no"),
            "best in this share of simulations": [f"{100 * v:.0f}%" for v in lags["share_of_draws_best"]],
        }
    )


def lag_caption(analysis: SummaryAnalysis) -> str:
    return narrative.describe_lag_caption(LAG_DRAWS)


def sources_table(analysis: SummaryAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ledger figure this report used (the joint fit's and the request counts), and the
    publications they come from."""
    used = analysis.products.fitted.obs.figures
    ids = list(used.loc[used["is_used"], "figure_id"])
    requests = request_figures(analysis.ledger)
    ids += list(requests.loc[requests["is_used"], "figure_id"])
    return sources_for(analysis.ledger, ids)


def unused_figures_sentence(analysis: SummaryAnalysis) -> str:
    return narrative.describe_unused_figures(len(analysis.ledger) - len(sources_table(analysis)[0]))


def how_estimated(analysis: SummaryAnalysis) -> list[str]:
    return [*methods_sentences(analysis), narrative.describe_methods_pointer()]


# ----------------------------------------------------------------------------- charts


def side_by_side_chart(analysis: SummaryAnalysis):
    monthly = analysis.outputs["monthly_filings"]
    used = analysis.outputs["fit_to_ledger"]
    used = used[used["is_used"] & ~is_running_total(used["period_start"])]
    return plotting.plot_articles_side_by_side(
        monthly[monthly["article"].isin(ARTICLES)],
        used,
        analysis.spec.break_month,
        {a: ARTICLE_LABELS[a][0].upper() + ARTICLE_LABELS[a][1:] for a in ARTICLES},
    )


def side_by_side_caption(analysis: SummaryAnalysis) -> str:
    caption = narrative.describe_side_by_side_caption(
        analysis.draws.months[analysis.draws.n_observed - 1], analysis.spec.break_month
    )
    span = trend.provisional_span(analysis.products)
    return caption + (" " + narrative.describe_provisional_shading(*span) if span else "")


def side_by_side_alt_text(analysis: SummaryAnalysis) -> str:
    years = trend.full_years(analysis.draws)
    if not years:
        return narrative.describe_side_by_side_alt_text(None, [])
    totals = year_totals(analysis, years[-1])
    return narrative.describe_side_by_side_alt_text(
        years[-1], [(ARTICLE_LABELS[a], totals[a]["estimate"]) for a in ARTICLES]
    )


def requests_chart(analysis: SummaryAnalysis):
    per_draw, _ = filings_expected(analysis.draws, COMPARISON_ARTICLES)
    rows = sorted({row for a in COMPARISON_ARTICLES for row in article_rows(a)})
    counts = analysis.draws.counts[:, rows, :].sum(axis=1)
    q = np.quantile(counts, [0.025, 0.975], axis=0)
    filings = pd.DataFrame(
        {
            "month": analysis.draws.months.astype(str),
            "expected": per_draw.mean(axis=0),
            "lower_95": q[0],
            "upper_95": q[1],
        }
    )
    first, last = requests_span(analysis)
    lag_end = pd.Period(last, "M") + int(analysis.lags["lag_months"].max())
    filings = filings[(filings["month"] >= str(pd.Period(first, "M") - 3)) & (filings["month"] <= str(lag_end))]
    return plotting.plot_requests_against_filings(analysis.requests.monthly(), analysis.requests.windows, filings)


def requests_caption(analysis: SummaryAnalysis) -> str:
    return narrative.describe_requests_caption()


def requests_alt_text(analysis: SummaryAnalysis) -> str:
    first, last = requests_span(analysis)
    return narrative.describe_requests_alt_text(first, last, analysis.requests.growth_percent()[0])


def cross_check_caption(analysis: SummaryAnalysis) -> str:
    return narrative.describe_cross_check_caption()


def cross_check_alt_text(analysis: SummaryAnalysis) -> str:
    check = analysis.cross_check
    return narrative.describe_cross_check_alt_text(len(check), int(check["is_covered"].sum()))


def methods_sentences(analysis: SummaryAnalysis) -> list[str]:
    if analysis.requests is None:
        return narrative.describe_summary_methods(len(analysis.cross_check), None)
    fit, figures = analysis.requests.fit, analysis.requests.figures
    return narrative.describe_summary_methods(
        len(analysis.cross_check),
        (int(figures["is_used"].sum()), len(figures), len(analysis.requests.windows.value), fit.scale, fit.df_resid),
    )


# ----------------------------------------------------------------------------- sections
# What each section shows, for the notebook to display (the notebook makes every show call).


def cross_check_section(analysis: SummaryAnalysis) -> reporting.Section:
    if analysis.cross_check.empty:
        return reporting.Section(paragraphs=[narrative.describe_no_cross_check()])
    return reporting.Section(
        figure=(
            plotting.plot_validation(cross_check_scores(analysis)),
            cross_check_caption(analysis),
            cross_check_alt_text(analysis),
        ),
        table=(cross_check_table(analysis), "All-article figures against the model fitted without them"),
    )


def requests_section(analysis: SummaryAnalysis) -> reporting.Section:
    if analysis.requests is None:
        return reporting.Section(paragraphs=[narrative.describe_no_requests(analysis.requests_missing)])
    return reporting.Section(
        figure=(requests_chart(analysis), requests_caption(analysis), requests_alt_text(analysis)),
        table=(
            request_windows_table(analysis),
            "Published request counts made disjoint: a window minus the months published on their own",
        ),
    )


def lags_section(analysis: SummaryAnalysis) -> reporting.Section:
    if analysis.requests is None:
        return reporting.Section(paragraphs=[narrative.describe_no_requests(analysis.requests_missing)])
    return reporting.Section(paragraphs=[lag_sentence(analysis)], table=(lag_table(analysis), lag_caption(analysis)))


# ----------------------------------------------------------------------------- published data


def data_package(analysis: SummaryAnalysis) -> public.DataPackage:
    """The joint fit's public tables, the all-articles cross-check, and the sources."""
    tables = dict(analysis.outputs)
    tables["cross_check"] = analysis.cross_check
    used = analysis.products.fitted.obs.figures
    used_ids = set(used.loc[used["is_used"], "figure_id"])
    return public.DataPackage(
        name="milcourts-summary",
        title="Refusing to fight: the three articles side by side",
        description=(
            "The tables behind the summary report: monthly and yearly cases received by military courts "
            "for AWOL, desertion and refusing orders and their sum, the effects of the mobilisation "
            "break, the fit to each published figure, and the out-of-sample all-articles cross-check."
        ),
        tables=tuple((table, public.public_frame(table, tables)) for table in (*public.FIT_TABLES, public.CROSS_CHECK)),
        sources=tuple(public.sources_of(analysis.ledger[analysis.ledger["figure_id"].isin(used_ids)])),
    )
