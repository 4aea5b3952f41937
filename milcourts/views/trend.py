"""Everything the per-article trend report shows, computed in one call from the ledger.

The notebook `02-filings-trend` stays thin: it passes its parameters here and displays what comes
back. The model is always fitted jointly to all three articles (all-article figures constrain
their sum); the report then looks at one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from milcourts import paths
from milcourts.inputs.ledger import load_ledger
from milcourts.model.fit import FittedModel
from milcourts.model.observations import LEVEL_MONTHS
from milcourts.model.simulate import Draws, article_rows, predict_total, window_draws
from milcourts.model.spec import MOBILISATION_BASE_START, ModelSpec
from milcourts.products import public
from milcourts.products.needs import SENSITIVITY_DRAWS, report_article, report_train_end, trend_requests
from milcourts.products.stage import FitProducts, load_or_fit
from milcourts.views import narrative, plotting, reporting
from milcourts.vocabulary import ARTICLE_LABELS, AUDIT_REPORT, DEFAULT_BREAK_MONTH, INVASION, METHODS_REPORT


@dataclass
class TrendAnalysis:
    """One article's view of the joint fit, with the tables the report prints."""

    article: str
    products: FitProducts  # the main fit: model, draws and tables (data/processed/fits)
    ledger: pd.DataFrame
    monthly: pd.DataFrame  # this article's rows of monthly_filings.csv, plus the counterfactual
    effects: pd.DataFrame  # this article's rows of effects.csv
    fit_to_ledger: pd.DataFrame  # this article's figures (all-article figures too for all_refusal)
    train_end: str | None
    sensitivity: list[FitProducts] = field(default_factory=list)  # the refits of the sensitivity table

    @property
    def spec(self) -> ModelSpec:
        return self.products.request.spec

    @property
    def fitted(self) -> FittedModel:
        return self.products.fitted

    @property
    def draws(self) -> Draws:
        return self.products.draws

    @property
    def label(self) -> str:
        return ARTICLE_LABELS[self.article]

    @property
    def data_vintage(self) -> pd.Timestamp:
        """Latest publication date of a figure the fit used."""
        used = self.fit_to_ledger[self.fit_to_ledger["is_used"]]
        return pd.to_datetime(used["source_date"]).max()


def _counterfactual_rows(draws: Draws, article: str) -> pd.DataFrame:
    rows = article_rows(article)
    counterfactual = draws.counterfactual[:, rows, :].sum(axis=1)
    q = np.quantile(counterfactual, [0.025, 0.975], axis=0)
    return pd.DataFrame(
        {
            "month": draws.months.astype(str),
            "counterfactual_expected": counterfactual.mean(axis=0),
            "counterfactual_lower_95": q[0],
            "counterfactual_upper_95": q[1],
        }
    )


def run_trend_analysis(
    ledger_csv: str | Path,
    article: str | int,
    break_month: str = DEFAULT_BREAK_MONTH,
    train_end: str = "",
    forecast_months: int = 6,
    likelihood: str = "negative_binomial",
) -> TrendAnalysis:
    """The joint fit with the report's parameters (stored by the fit stage, or fitted here) and
    one article's cut of its tables. `train_end` "" uses every figure; a date fits only what was
    published by then."""
    article = report_article(article)
    ledger = load_ledger(paths.resolve(ledger_csv))
    main, *sensitivity = load_or_fit(trend_requests(ledger, break_month, train_end, forecast_months, likelihood))
    monthly = main.tables["monthly_filings"]
    monthly = monthly[monthly["article"] == article].merge(_counterfactual_rows(main.draws, article), on="month")
    effects = main.tables["effects"]
    figures = main.tables["fit_to_ledger"]
    return TrendAnalysis(
        article=article,
        products=main,
        ledger=ledger,
        monthly=monthly.reset_index(drop=True),
        effects=effects[effects["article"] == article].reset_index(drop=True),
        fit_to_ledger=figures[figures["article"] == article].reset_index(drop=True),
        train_end=report_train_end(train_end) or None,
        sensitivity=sensitivity,
    )


def effect_value(effects: pd.DataFrame, starts: str) -> pd.Series:
    """The one effect row whose name starts with `starts`."""
    rows = effects[effects["effect"].str.startswith(starts)]
    if len(rows) != 1:
        raise KeyError(f"expected one effect starting {starts!r}, found {rows['effect'].tolist()}")
    return rows.iloc[0]


# Page one names the full posterior's interval of a headline effect when it is this much wider than
# the printed one, or an end moved by this share of its width (the methods report lists smaller
# differences too), or when only one of the two includes no change.
PAGE_ONE_DIFFERENCE = 0.25


def sampled_interval(products: FitProducts, article: str, starts: str) -> tuple[float, float, float] | None:
    """The full posterior's estimate and 95% interval of an effect, when the main fit's check
    sampled it and it differs materially from the approximation the report's tables print."""
    intervals = products.tables.get("posterior_intervals")
    if intervals is None:
        return None
    rows = intervals[(intervals["article"] == article) & intervals["quantity"].str.startswith(starts)]
    if len(rows) != 1:
        return None
    row = rows.iloc[0]
    if not bool(row["is_estimable"]):  # the report states no number for it: none sampled either
        return None
    lower, upper = float(row["lower_95_posterior"]), float(row["upper_95_posterior"])
    moved = max(abs(row["lower_shift_in_widths"]), abs(row["upper_shift_in_widths"]), row["width_ratio"] - 1)
    verdict_changes = bool(row["log_scale"]) and (
        (lower <= 1 <= upper) != (row["lower_95_laplace"] <= 1 <= row["upper_95_laplace"])
    )
    sampled = (float(row["estimate_posterior"]), lower, upper)
    return sampled if moved >= PAGE_ONE_DIFFERENCE or verdict_changes else None


def sampled_notes(products: FitProducts, articles: list[str]) -> list[tuple[str, str]]:
    """(which effect, its sampled range) for every headline effect whose first-page sentence gives
    the full posterior's range: the tables, which print the approximation, say so in their caption."""
    notes = []
    for article in articles:
        jump = sampled_interval(products, article, "level rate ratio at the break")
        if jump is not None:
            notes.append(
                (
                    f"the jump at the break for {ARTICLE_LABELS[article]}",
                    f"{narrative.format_ratio(jump[1])} to {narrative.format_ratio(jump[2])}",
                )
            )
        excess = sampled_interval(products, article, "excess cases")
        if excess is not None:
            _, low, high = narrative.round_estimate(*excess)
            notes.append((f"the cases beyond the earlier trend for {ARTICLE_LABELS[article]}", f"{low:,} to {high:,}"))
    return notes


def estimable_after(segments: pd.DataFrame, break_month: str) -> pd.DataFrame:
    """Growth periods from the break on that pass the identification rule (a headline such as
    "the fastest growth" is chosen among those only)."""
    after = segments[segments["first_month"] >= break_month]
    return after[[is_estimable(row) for _, row in after.iterrows()]]


def growth_segments(effects: pd.DataFrame) -> pd.DataFrame:
    """Monthly growth per period, in time order, with the period's first and last month."""
    rows = effects[effects["effect"].str.startswith("monthly growth ")].copy()
    period = rows["effect"].str.extract(r"monthly growth (\d{4}-\d{2}) to (\d{4}-\d{2})")
    rows["first_month"], rows["last_month"] = period[0], period[1]
    return rows.drop_duplicates(["first_month", "last_month"]).reset_index(drop=True)


def effects_caption(analysis: TrendAnalysis) -> str:
    return narrative.describe_effects_caption_for_readers(analysis.spec.n_draws) + narrative.describe_sampled_notes(
        sampled_notes(analysis.products, [analysis.article])
    )


def is_estimable(row: pd.Series) -> bool:
    """The identification rule's verdict (model.tables.estimability)."""
    return bool(row["is_estimable"])


def times_text(row: pd.Series) -> str:
    """A ratio effect as "1.8 (1.1 to 3.0)", or plainly that the figures cannot tell."""
    if not is_estimable(row):
        return narrative.NOT_ESTIMABLE
    return narrative.format_times(row["estimate"], row["lower_95"], row["upper_95"])


def _growth(row: pd.Series) -> str:
    if not is_estimable(row):
        return narrative.NOT_ESTIMABLE
    return (
        f"{narrative.format_percent(row['estimate'], signed=True)} a month "
        f"({narrative.format_percent(row['lower_95'], signed=True)} to "
        f"{narrative.format_percent(row['upper_95'], signed=True)})"
    )


def effects_for_report(analysis: TrendAnalysis) -> pd.DataFrame:
    """The change at the break and after it, in plain words, each with its 95% interval. The
    model's internal quantities (counting-base shares, the identification check) are in the
    methods report."""
    effects, rows = analysis.effects, []
    if analysis.article != "all_refusal":
        step = effect_value(effects, "level rate ratio at the break")
        rows.append(
            (
                "jump at the break: the month's count, times what the trend before predicted",
                f"{times_text(step)} times" if is_estimable(step) else times_text(step),
            )
        )
    span = provisional_span(analysis.products)
    for segment in growth_segments(effects).itertuples():
        row = effects[effects["effect"].str.contains(f"{segment.first_month} to {segment.last_month}", regex=False)]
        provisional = span is not None and segment.last_month >= span[0]
        rows.append(
            (
                f"change per month, {narrative.format_span(segment.first_month, segment.last_month)}"
                + (" (partly or wholly provisional months)" if provisional else ""),
                _growth(row.iloc[0]),
            )
        )
    excess = effect_value(effects, "excess cases")
    first, last = re.search(r"(\d{4}-\d{2}) to (\d{4}-\d{2})", excess["effect"]).groups()
    rows.append(
        (
            f"cases beyond the trend before mobilisation, {narrative.format_span(first, last)}",
            narrative.format_estimate(excess["estimate"], excess["lower_95"], excess["upper_95"]),
        )
    )
    return pd.DataFrame(rows, columns=["what changed", "estimate (95% interval)"])


def sources_table(analysis: TrendAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ledger figure the fit used for this article, and the publications they come from."""
    return sources_for(
        analysis.ledger, list(analysis.fit_to_ledger.loc[analysis.fit_to_ledger["is_used"], "figure_id"])
    )


_QUALIFIER_WORDS = {"approx": "about ", "at_least": "at least "}


def _figure_label(series: str, article: str) -> str:
    """Short enough that a row of the appendix fits on one line of an A4 page."""
    articles = {"337": "Art. 337", "338": "Art. 338", "332": "Art. 332", "all_refusal": "Arts. 332, 337, 338"}
    if series == "court_filings" and article in articles:
        return f"{articles[article]} cases"
    what = series.replace("_", " ")
    return f"{what}, {articles[article]}" if article in articles else what


def sources_for(ledger: pd.DataFrame, figure_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sources appendix as two tables: each figure (what it counts, period, value, source
    number), then each publication once (publisher, date, title, link).

    Most publications report several figures (the ledger has 161 figures from 45 publications);
    with the title and link repeated on every figure's row, the summary's appendix was more than
    half of its PDF. Publications are numbered in order of publication date.
    """
    rows = ledger.set_index("figure_id").loc[sorted(set(figure_ids))]  # by id, each once
    publications = pd.DataFrame(
        {
            "publisher": rows["source_publisher"].to_numpy(),
            "date": pd.to_datetime(rows["source_date"]).to_numpy(),
            "title": rows["source_title"].to_numpy(),
            "link": rows["source_url"].fillna("").to_numpy(),
        }
    )
    unique = (
        publications.drop_duplicates()
        .sort_values(["date", "publisher", "title", "link"], na_position="last", kind="stable")
        .reset_index(drop=True)
    )
    unique["source"] = [f"[{number}]" for number in range(1, len(unique) + 1)]
    numbered = publications.merge(unique, on=["publisher", "date", "title", "link"], how="left")
    figures = pd.DataFrame(
        {
            "figure": rows.index,
            "counts": [_figure_label(series, article) for series, article in zip(rows["series"], rows["article"])],
            "period": [f"{s:%Y-%m-%d} – {e:%Y-%m-%d}" for s, e in zip(rows["period_start"], rows["period_end"])],
            "published value": [
                f"{_QUALIFIER_WORDS.get(q, '')}{v:,.0f}" for v, q in zip(rows["value"], rows["value_qualifier"])
            ],
            "source": numbered["source"].to_numpy(),
        }
    )
    listed = pd.DataFrame(
        {
            "source": unique["source"],
            "publisher": unique["publisher"],
            "published": [f"{d:%Y-%m-%d}" if pd.notna(d) else "date unknown" for d in unique["date"]],
            "title": unique["title"],
            "link": unique["link"],
        }
    )
    return figures.reset_index(drop=True), listed


def is_running_total(period_start: pd.Series) -> pd.Series:
    """Totals counted from the mobilisation or the invasion, drawn on the cumulative panel."""
    starts = pd.to_datetime(period_start)
    return (starts == MOBILISATION_BASE_START) | (starts == INVASION)


def article_title(article: str) -> str:
    return ARTICLE_LABELS.get(article, article)


def cumulative_since(analysis: TrendAnalysis, start: pd.Timestamp, as_counted: bool) -> pd.DataFrame:
    """Modelled running total from `start` to each month end, with its 95% prediction interval.

    `as_counted`: in the counting base of a published "since mobilisation" total (what Mediazona's
    running totals count); otherwise every case received.
    """
    draws = analysis.draws
    rows = article_rows(analysis.article)
    values = draws.counts * (draws.base_share() if as_counted and start == MOBILISATION_BASE_START else 1.0)
    monthly = values[:, rows, :].sum(axis=1)
    first = draws.months.get_loc(start.to_period("M"))
    share = np.zeros(len(draws.months))
    share[first] = (draws.months[first].end_time.normalize() - start).days / draws.months[
        first
    ].days_in_month + 1 / draws.months[first].days_in_month
    share[first + 1 :] = 1.0
    running = np.cumsum(monthly * share, axis=1)[:, first:]
    q = np.quantile(running, [0.025, 0.975], axis=0)
    return pd.DataFrame(
        {
            "month_end": [m.end_time.normalize() for m in draws.months[first:]],
            "expected": running.mean(axis=0),
            "lower_95": q[0],
            "upper_95": q[1],
            "is_forecast": np.arange(first, len(draws.months)) >= draws.n_observed,
        }
    )


# ----------------------------------------------------------------------------- page one

# Two releases of one period differ in their end date by a few days ("2023 as of 29 December").
SAME_PERIOD_DAYS = 3


def full_years(draws: Draws) -> list[int]:
    """Calendar years whose twelve months are all modelled from data (no forecast month)."""
    observed = draws.months[: draws.n_observed]
    counts = pd.Series(observed.year).value_counts()
    return sorted(int(y) for y, n in counts.items() if n == 12)


def latest_quarter(draws: Draws, pinned_end: int | None = None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The latest calendar quarter whose three months are all modelled from data and, with
    `pinned_end`, none provisional (a quarter resting on one release is not a finding)."""
    end = draws.n_observed if pinned_end is None else min(pinned_end, draws.n_observed)
    observed = draws.months[:end]
    for month in reversed(observed):
        if month.month in (3, 6, 9, 12) and (month - 2) >= observed[0]:
            return (month - 2).start_time, month.end_time.normalize()
    return None


def period_estimate(products: FitProducts, article: str, start, end) -> tuple[float, float, float]:
    """Cases received over whole months [start, end]: the sum of the monthly table's rows (what a
    reader adds up from the published data) and the 95% range of the period's total from the draws."""
    monthly = products.tables["monthly_filings"]
    months = pd.period_range(pd.Timestamp(start), pd.Timestamp(end), freq="M").astype(str)
    rows = monthly[(monthly["article"] == article) & monthly["month"].isin(months)]
    totals, _ = window_draws(products.draws, article, start, end)
    lo, hi = np.quantile(totals, [0.025, 0.975])
    return float(rows["expected"].sum()), float(lo), float(hi)


def published_for(products: FitProducts, article: str, start, end) -> pd.Series | None:
    """The latest release of a published count for exactly this article and period, if any."""
    figures = products.tables["fit_to_ledger"]
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    same = figures[
        (figures["article"] == article)
        & (figures["measure"] == "count")
        & (pd.to_datetime(figures["period_start"]) == start)
        & ((pd.to_datetime(figures["period_end"]) - end).abs() <= pd.Timedelta(days=SAME_PERIOD_DAYS))
    ]
    if same.empty:
        return None
    return same.sort_values("source_date").iloc[-1]


def _published_text(row: pd.Series | None) -> str:
    if row is None:
        return "—"
    qualifier = {"approx": "about ", "at_least": "at least ", "at_most": "at most "}.get(row["value_qualifier"], "")
    when = narrative.format_date(pd.Timestamp(row["source_date"])) if row["source_date"] else "date unknown"
    return f"{qualifier}{row['value']:,.0f} (published {when})"


def latest_release(analysis: TrendAnalysis) -> pd.Timestamp:
    """Publication date of the newest figure the fit used (the end of the data, whatever the
    ledger holds on other subjects)."""
    used = analysis.fitted.obs.figures
    return pd.Timestamp(used.loc[used["is_used"], "assumed_source_date"].max())


def headline_periods(draws: Draws, pinned_end: int | None = None) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """Each full year, then the latest complete quarter not resting on provisional months (also
    when it closes the last full year: a quarter says where the series stands now, a year does
    not): the periods page one reports."""
    periods = [(str(year), pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)) for year in full_years(draws)]
    quarter = latest_quarter(draws, pinned_end)
    if quarter is not None:
        periods.append((narrative.format_period(*quarter), *quarter))
    return periods


def headline_table(analysis: TrendAnalysis) -> pd.DataFrame:
    """Page one: cases received in each full year and the latest complete quarter, each with its
    range, beside the number published for that period where there is one."""
    rows = []
    for label, start, end in headline_periods(analysis.draws, analysis.products.fitted.obs.pinned_end):
        estimate = period_estimate(analysis.products, analysis.article, start, end)
        rows.append(
            {
                "period": label,
                "cases received (model estimate and range)": narrative.format_estimate(*estimate),
                "published for the same period": _published_text(
                    published_for(analysis.products, analysis.article, start, end)
                ),
            }
        )
    return pd.DataFrame(rows)


def headline_caption(analysis: TrendAnalysis) -> str:
    return narrative.describe_headline_table_caption(analysis.label)


def year_ratio(draws: Draws, article: str, year: int) -> tuple[float, float, float]:
    """Cases in `year` over cases in the year before: median and 95% interval across draws."""
    counts = draws.counts[:, article_rows(article), :].sum(axis=1)
    this = counts[:, np.asarray(draws.months.year == year)].sum(axis=1)
    before = counts[:, np.asarray(draws.months.year == year - 1)].sum(axis=1)
    ratio = this / np.maximum(before, 1)
    lo, mid, hi = np.quantile(ratio, [0.025, 0.5, 0.975])
    return float(mid), float(lo), float(hi)


def key_findings(analysis: TrendAnalysis) -> list[str]:
    """Page one in sentences, every number from the fit: how many in the latest full year and
    quarter, the change at the break and since, what comes next; said plainly where the figures
    cannot tell."""
    draws, article, effects = analysis.draws, analysis.article, analysis.effects
    sentences = []
    years = full_years(draws)
    if years:
        year = years[-1]
        start, end = pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)
        ratio = year_ratio(draws, article, year) if year - 1 in years else None
        sentences.append(
            narrative.describe_latest_year(
                analysis.label, year, period_estimate(analysis.products, article, start, end), ratio
            )
        )
    quarter = latest_quarter(draws, analysis.products.fitted.obs.pinned_end)
    if quarter is not None:
        sentences.append(
            narrative.describe_latest_quarter(
                narrative.format_period(*quarter), period_estimate(analysis.products, article, *quarter)
            )
        )
    provisional = provisional_sentence(analysis.products)
    if provisional:
        sentences.append(provisional)
    if article != "all_refusal":
        step = effect_value(effects, "level rate ratio at the break")
        sentences.append(
            narrative.describe_jump(
                analysis.spec.break_month,
                step["estimate"],
                step["lower_95"],
                step["upper_95"],
                "" if is_estimable(step) else step["not_estimable_because"],
                sampled_interval(analysis.products, article, "level rate ratio at the break"),
            )
        )
    excess = effect_value(effects, "excess cases")
    first, last = re.search(r"(\d{4}-\d{2}) to (\d{4}-\d{2})", excess["effect"]).groups()
    sentences.append(
        narrative.describe_excess_for_readers(
            first,
            last,
            excess["estimate"],
            excess["lower_95"],
            excess["upper_95"],
            sampled_interval(analysis.products, article, "excess cases"),
        )
    )
    forecast = analysis.monthly[analysis.monthly["is_forecast"]]
    if len(forecast):
        window = predict_total(
            draws,
            article,
            pd.Period(forecast["month"].iloc[0], "M").start_time,
            pd.Period(forecast["month"].iloc[-1], "M").end_time.normalize(),
        )
        sentences.append(
            narrative.describe_forecast_for_readers(
                forecast["month"].iloc[0],
                forecast["month"].iloc[-1],
                (window["estimate"], window["lower_95"], window["upper_95"]),
                latest_release(analysis),
                analysis.spec.forecast_method,
                level_months(analysis.products),
            )
        )
    return sentences


def identification_paragraphs(analysis: TrendAnalysis) -> list[str]:
    """What the figures before the break cannot separate, said beside the effects it concerns
    (page one keeps to the numbers a reader comes for)."""
    if analysis.article == "all_refusal":
        return []
    correlation = effect_value(analysis.effects, "correlation of pre-break slope")["estimate"]
    identification = narrative.describe_identification(correlation, pre_break_figures(analysis))
    return [identification] if identification else []


def page_one_heading(analysis: TrendAnalysis) -> str:
    return f"{narrative.capitalised(analysis.label)}: how many cases, and is it rising?"


def reading_box(analysis: TrendAnalysis) -> tuple[list[str], list[tuple[str, str]]]:
    """How to read and cite these numbers, and the short glossary."""
    title = f"{narrative.capitalised(analysis.label)} cases in Russia's military courts"
    return (
        narrative.reading_box(
            analysis.label, analysis.label, analysis.ledger["source_date"].max(), reporting.build_date(), title
        ),
        narrative.glossary(analysis.spec.break_month),
    )


def pre_break_figures(analysis: TrendAnalysis) -> int:
    """Figures used for this article whose period ends before the break month."""
    used = analysis.fit_to_ledger[analysis.fit_to_ledger["is_used"]]
    ends = pd.to_datetime(used["period_end"])
    return int((ends < pd.Period(analysis.spec.break_month, "M").start_time).sum())


def figure_words(row) -> str:
    """A published figure as a reader identifies it: its period and when it was published."""
    period = narrative.format_period(pd.Timestamp(row["period_start"]), pd.Timestamp(row["period_end"]))
    published = (
        pd.Timestamp(row["source_date"])
        if isinstance(row["source_date"], (str, pd.Timestamp)) and row["source_date"] != ""
        else pd.NaT
    )
    when = "date unknown" if pd.isna(published) else narrative.format_date(published)
    return f"{period} (published {when})"


def fit_sentence(analysis: TrendAnalysis) -> str:
    table = analysis.fit_to_ledger
    exact = table[table["is_used"] & (table["value_qualifier"] == "exact")]
    far = exact[exact["standardised_residual"].abs() > narrative.RESIDUAL_LIMIT]
    return narrative.describe_fit_for_readers(
        len(exact) - len(far), len(exact), [figure_words(r) for _, r in far.iterrows()]
    )


def how_estimated(analysis: TrendAnalysis) -> list[str]:
    """Half a page on how the numbers were made, linking the methods and validation report."""
    fitted = analysis.fitted
    used = fitted.obs.figures["is_used"]
    params = dict(zip(fitted.names, fitted.params))
    return narrative.describe_how_estimated(
        int(used.sum()),
        analysis.spec.break_month,
        float(np.exp(params["log_tau_days"])),
        pd.Timestamp(analysis.train_end) if analysis.train_end else None,
    )


def unused_figures_sentence(analysis: TrendAnalysis) -> str:
    """The ledger's figures this report does not rest on, counted, not listed."""
    listed = len(sources_table(analysis)[0])
    return narrative.describe_unused_figures(len(analysis.ledger) - listed)


# Phrases of the report's prose that link to the other reports.
LINKS = {"the methods and validation report": f"{METHODS_REPORT}.html", "the ledger audit": f"{AUDIT_REPORT}.html"}


# ----------------------------------------------------------------------------- charts and captions


def _published_for_chart(analysis: TrendAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Used figures split into monthly-panel windows and since-mobilisation running totals."""
    used = analysis.fit_to_ledger[analysis.fit_to_ledger["is_used"]]
    running = is_running_total(used["period_start"])
    since_mobilisation = pd.to_datetime(used["period_start"]) == MOBILISATION_BASE_START
    return used[~running], used[since_mobilisation]


def trend_chart(analysis: TrendAnalysis):
    windows, running_figures = _published_for_chart(analysis)
    return plotting.plot_monthly_trend(
        analysis.monthly,
        windows,
        analysis.spec.break_month,
        cumulative_since(analysis, MOBILISATION_BASE_START, as_counted=True),
        cumulative_since(analysis, MOBILISATION_BASE_START, as_counted=False),
        running_figures,
        f"{analysis.label[0].upper() + analysis.label[1:]}: cases received by military courts",
    )


def level_months(products: FitProducts) -> tuple[str, str] | None:
    """The months a local-level forecast stays at (observations.design_matrix)."""
    end = products.fitted.obs.pinned_end
    if end == 0:
        return None
    months = products.fitted.obs.months
    return str(months[max(0, end - LEVEL_MONTHS)]), str(months[end - 1])


def provisional_span(products: FitProducts) -> tuple[str, str, pd.Timestamp] | None:
    """First and last provisional month and the one release that reaches them, or None."""
    obs = products.fitted.obs
    flags = obs.is_provisional
    if not flags.any():
        return None
    index = np.nonzero(flags)[0]
    releases = np.unique(obs.release_dates[obs.weights[:, index[-1]] > 0])
    return str(obs.months[index[0]]), str(obs.months[index[-1]]), pd.Timestamp(releases[-1])


def release_contradiction(conflicts: pd.DataFrame, release: pd.Timestamp) -> tuple[float, str] | None:
    """The largest disagreement of a release with itself (inputs.constraints, kind
    "within_release_disagreement"), as (size in cases, the period it concerns), or None."""
    if conflicts.empty:
        return None
    own = conflicts[
        (conflicts["kind"] == "within_release_disagreement") & (pd.to_datetime(conflicts["release_date"]) == release)
    ]
    if own.empty:
        return None
    worst = own.loc[own["excess"].abs().idxmax()]
    period = narrative.format_period(pd.Timestamp(worst["period_start"]), pd.Timestamp(worst["period_end"]))
    return float(abs(worst["excess"])), f"{ARTICLE_LABELS[worst['article']]}, {period}"


def provisional_sentence(products: FitProducts) -> str | None:
    span = provisional_span(products)
    if span is None:
        return None
    return narrative.describe_provisional_months(*span, release_contradiction(products.fitted.conflicts, span[2]))


def trend_caption(analysis: TrendAnalysis) -> str:
    windows, running = _published_for_chart(analysis)
    forecast = analysis.monthly[analysis.monthly["is_forecast"]]
    clipped = plotting.forecast_ceiling(analysis.monthly, windows) is not None
    caption = narrative.describe_trend_caption(
        len(windows),
        len(running),
        analysis.spec.break_month,
        forecast["month"].iloc[0] if len(forecast) else None,
        clipped,
    )
    span = provisional_span(analysis.products)
    return caption + (" " + narrative.describe_provisional_shading(*span) if span else "")


def trend_alt_text(analysis: TrendAnalysis) -> str:
    observed = analysis.monthly[~analysis.monthly["is_forecast"]]
    peak = observed.loc[observed["expected"].idxmax()]
    return narrative.describe_trend_alt_text(
        analysis.label, observed["month"].iloc[0], observed["month"].iloc[-1], peak["expected"], peak["month"]
    )


def residual_caption(analysis: TrendAnalysis) -> str:
    return narrative.describe_residual_caption(int(analysis.fit_to_ledger["is_used"].sum()))


def residual_alt_text(analysis: TrendAnalysis) -> str:
    used = analysis.fit_to_ledger[analysis.fit_to_ledger["is_used"]]
    return narrative.describe_residual_alt_text(len(used), int((used["standardised_residual"].abs() > 2).sum()))


# ----------------------------------------------------------------------------- sensitivity


def _sensitivity_row(label: str, spec: ModelSpec, effects: pd.DataFrame, article: str) -> dict:
    segments = growth_segments(effects)
    after = estimable_after(segments, spec.break_month)
    fastest = after.loc[after["estimate"].idxmax()]
    excess = effect_value(effects, "excess cases")
    through = re.search(r"to (\d{4}-\d{2}) versus", excess["effect"]).group(1)
    row = {"model variant": label}
    if article != "all_refusal":
        step = effect_value(effects, "level rate ratio at the break")
        row["jump at the break (times)"] = times_text(step)
    row["fastest growth after the break"] = (
        f"{narrative.format_percent(fastest['estimate'], signed=True)} a month, "
        f"{narrative.format_span(fastest['first_month'], fastest['last_month'])}"
    )
    row["cases beyond the earlier trend, to the end of the data"] = (
        f"{narrative.format_estimate(excess['estimate'], excess['lower_95'], excess['upper_95'])}, "
        f"to {narrative.format_month(through)}"
    )
    return row


def sensitivity_table(analysis: TrendAnalysis) -> pd.DataFrame:
    """The headline effects as reported (first row, the same numbers as the effect table) and
    under each refit of `products.needs.sensitivity_requests`."""
    rows = [_sensitivity_row("as reported", analysis.spec, analysis.effects, analysis.article)]
    for refit in analysis.sensitivity:
        effects = refit.tables["effects"]
        rows.append(
            _sensitivity_row(
                refit.request.description,
                refit.request.spec,
                effects[effects["article"] == analysis.article],
                analysis.article,
            )
        )
    return pd.DataFrame(rows)


def sensitivity_caption() -> str:
    return narrative.describe_sensitivity_caption(SENSITIVITY_DRAWS)


# ----------------------------------------------------------------------------- published data


def data_package(analysis: TrendAnalysis) -> public.DataPackage:
    """The joint fit's public tables (every article, so totals can be checked against their parts)
    and the publications the figures come from."""
    tables = analysis.products.tables
    used = analysis.products.fitted.obs.figures
    used_ids = set(used.loc[used["is_used"], "figure_id"])
    return public.DataPackage(
        name=f"milcourts-trend-{analysis.article}",
        title=f"{analysis.label[:1].upper() + analysis.label[1:]}: cases received by Russia's military courts",
        description=(
            f"The tables behind the report on {analysis.label}: monthly and yearly cases received by "
            "military courts as modelled from every published figure, for each article and the three "
            "together, the effects of the mobilisation break, and the fit to each published figure."
        ),
        tables=tuple((table, public.public_frame(table, tables)) for table in public.FIT_TABLES),
        sources=tuple(public.sources_of(analysis.ledger[analysis.ledger["figure_id"].isin(used_ids)])),
    )
