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
from milcourts.checks.validation import VALIDATION_FILES
from milcourts.inputs.ledger import load_ledger
from milcourts.inputs.provenance import sha256_of
from milcourts.model.fit import FittedModel
from milcourts.model.simulate import Draws, article_rows, predict_total
from milcourts.model.spec import MOBILISATION_BASE_START, ModelSpec
from milcourts.products import public
from milcourts.products.needs import SENSITIVITY_DRAWS, report_article, report_train_end, trend_requests
from milcourts.products.stage import FitProducts, load_or_fit
from milcourts.views import narrative, plotting
from milcourts.vocabulary import ARTICLE_LABELS, DEFAULT_BREAK_MONTH, INVASION


@dataclass
class TrendAnalysis:
    """One article's view of the joint fit, with the tables the report prints."""

    article: str
    products: FitProducts  # the main fit: model, draws and tables (data/processed/fits)
    ledger: pd.DataFrame
    monthly: pd.DataFrame  # this article's rows of monthly_filings.csv, plus the counterfactual
    effects: pd.DataFrame  # this article's rows of effects.csv
    fit_to_ledger: pd.DataFrame  # this article's figures (all-article figures too for all_refusal)
    validation: dict[str, pd.DataFrame]  # make validate's tables, when they exist
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


def read_validation(ledger_csv: Path, directory: Path | None = None) -> dict[str, pd.DataFrame]:
    """The tables `make validate` wrote for this very ledger file; empty if it has not run on it
    (the report then says so rather than showing another ledger's results)."""
    directory = directory or paths.processed_dir()
    inputs = directory / VALIDATION_FILES["inputs"]
    if not inputs.exists() or pd.read_csv(inputs)["ledger_sha256"].iloc[0] != sha256_of(ledger_csv):
        return {}
    found = {}
    for key, name in VALIDATION_FILES.items():
        path = directory / name
        if path.exists():
            found[key] = pd.read_csv(path)
    return found


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
        validation=read_validation(paths.resolve(ledger_csv)),
        train_end=report_train_end(train_end) or None,
        sensitivity=sensitivity,
    )


def effect_value(effects: pd.DataFrame, starts: str) -> pd.Series:
    """The one effect row whose name starts with `starts`."""
    rows = effects[effects["effect"].str.startswith(starts)]
    if len(rows) != 1:
        raise KeyError(f"expected one effect starting {starts!r}, found {rows['effect'].tolist()}")
    return rows.iloc[0]


def growth_segments(effects: pd.DataFrame) -> pd.DataFrame:
    """Monthly growth per period, in time order, with the period's first and last month."""
    rows = effects[effects["effect"].str.startswith("monthly growth ")].copy()
    period = rows["effect"].str.extract(r"monthly growth (\d{4}-\d{2}) to (\d{4}-\d{2})")
    rows["first_month"], rows["last_month"] = period[0], period[1]
    return rows.drop_duplicates(["first_month", "last_month"]).reset_index(drop=True)


def effects_caption(effects: pd.DataFrame) -> str:
    return narrative.describe_effects_caption(list(effects.dropna(subset=["lower_95"])["method"].unique()))


def effects_for_report(effects: pd.DataFrame) -> pd.DataFrame:
    """The effect table as printed: rounded, readable names; the method column only when the
    methods differ (otherwise the caption says it once)."""
    table = effects.dropna(subset=["lower_95"]).copy()
    if table["method"].nunique() == 1:
        table = table.drop(columns="method")
    digits = np.where(table["effect"].str.contains("excess"), 0, 2)
    for column in ("estimate", "lower_95", "upper_95"):
        table[column] = [f"{v:,.{d}f}" for v, d in zip(table[column], digits)]
    return table.rename(
        columns={"lower_95": "95% lower", "upper_95": "95% upper", "method": "how the interval was made"}
    ).drop(columns="article")


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
    rows = ledger.set_index("figure_id").loc[figure_ids]
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


def key_findings(analysis: TrendAnalysis) -> list[str]:
    """3-6 sentences, every number from the fit (narrative.py words them)."""
    effects = analysis.effects
    break_month = analysis.spec.break_month
    segments = growth_segments(effects)
    before = segments[segments["last_month"] < break_month].iloc[0]
    after = segments[segments["first_month"] >= break_month]
    fastest = after.loc[after["estimate"].idxmax()]
    latest = after.iloc[-1]
    sentences = [
        narrative.describe_growth(
            analysis.label,
            before["estimate"],
            before["lower_95"],
            before["upper_95"],
            fastest["estimate"],
            fastest["lower_95"],
            fastest["upper_95"],
            fastest["first_month"],
            fastest["last_month"],
        )
    ]
    if latest["first_month"] != fastest["first_month"]:
        sentences.append(
            narrative.describe_latest_growth(
                latest["estimate"], latest["lower_95"], latest["upper_95"], latest["first_month"], latest["last_month"]
            )
        )
    if analysis.article != "all_refusal":
        step = effect_value(effects, "level rate ratio at the break")
        sentences.append(
            narrative.describe_level_step(break_month, step["estimate"], step["lower_95"], step["upper_95"])
        )
    excess = effect_value(effects, "excess cases")
    first, last = re.search(r"(\d{4}-\d{2}) to (\d{4}-\d{2})", excess["effect"]).groups()
    sentences.append(narrative.describe_excess(first, last, excess["estimate"], excess["lower_95"], excess["upper_95"]))
    forecast = analysis.monthly[analysis.monthly["is_forecast"]]
    if len(forecast):
        window = predict_total(
            analysis.draws,
            analysis.article,
            pd.Period(forecast["month"].iloc[0], "M").start_time,
            pd.Period(forecast["month"].iloc[-1], "M").end_time.normalize(),
        )
        sentences.append(
            narrative.describe_forecast(
                len(forecast),
                forecast["month"].iloc[0],
                forecast["month"].iloc[-1],
                window["estimate"],
                window["lower_95"],
                window["upper_95"],
            )
        )
    if analysis.article != "all_refusal":
        correlation = effect_value(effects, "correlation of pre-break slope")["estimate"]
        identification = narrative.describe_identification(correlation, pre_break_figures(analysis))
        if identification:
            sentences.append(identification)
    return sentences[:6]


def pre_break_figures(analysis: TrendAnalysis) -> int:
    """Figures used for this article whose period ends before the break month."""
    used = analysis.fit_to_ledger[analysis.fit_to_ledger["is_used"]]
    ends = pd.to_datetime(used["period_end"])
    return int((ends < pd.Period(analysis.spec.break_month, "M").start_time).sum())


def fit_sentence(analysis: TrendAnalysis) -> str:
    table = analysis.fit_to_ledger
    exact = table[table["is_used"] & (table["value_qualifier"] == "exact")]
    outside = exact.loc[~exact["is_inside_95"].astype(bool), "figure_id"].tolist()
    return narrative.describe_fit(int(exact["is_inside_95"].astype(bool).sum()), len(exact), outside)


def validation_scores(analysis: TrendAnalysis) -> pd.DataFrame:
    """Held-out figures of every article (the model is joint), labelled for the validation chart."""
    frames = []
    if "rolling_origin" in analysis.validation:
        rolling = analysis.validation["rolling_origin"].copy()
        rolling["label"] = (
            rolling["figure_id"]
            + " "
            + rolling["article"]
            + ", fitted on figures published by "
            + rolling["origin"].astype(str)
        )
        frames.append(rolling)
    if "leave_one_out" in analysis.validation:
        loo = analysis.validation["leave_one_out"].copy()
        loo["label"] = loo["figure_id"] + " " + loo["article"] + ", fitted on every other figure"
        frames.append(loo)
    columns = ["label", "value", "value_qualifier", "predicted_median", "lower_95", "upper_95", "is_covered"]
    return pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)


def validation_sentence(analysis: TrendAnalysis) -> str | None:
    if not {"rolling_origin", "rolling_origin_summary", "leave_one_out"} <= set(analysis.validation):
        return None
    rolling = analysis.validation["rolling_origin"]
    summary = analysis.validation["rolling_origin_summary"].iloc[0]
    loo = analysis.validation["leave_one_out"]
    return narrative.describe_validation(
        int(rolling["is_covered"].sum()),
        len(rolling),
        float(summary["relative_mae"]),
        int(loo["is_covered"].sum()),
        len(loo),
    )


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


def trend_caption(analysis: TrendAnalysis) -> str:
    windows, running = _published_for_chart(analysis)
    forecast = analysis.monthly[analysis.monthly["is_forecast"]]
    return narrative.describe_trend_caption(
        len(windows), len(running), analysis.spec.break_month, forecast["month"].iloc[0] if len(forecast) else None
    )


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


def methods_sentences(analysis: TrendAnalysis) -> list[str]:
    """The modelling choices behind this run, read off the fit itself."""
    fitted = analysis.fitted
    used = fitted.obs.figures["is_used"]
    params = dict(zip(fitted.names, fitted.params))
    return narrative.describe_trend_methods(
        int(used.sum()),
        int((~used).sum()),
        analysis.spec.break_month,
        [narrative.format_month(pd.Period(analysis.spec.break_month, "M") + k) for k in fitted.knots],
        fitted.penalty,
        analysis.spec.likelihood,
        100 * np.sqrt(np.exp(params["log_phi"])),
        100 * np.sqrt(np.exp(params["log_alpha"])),
        float(np.exp(params["log_tau_days"])),
        pd.Timestamp(analysis.train_end) if analysis.train_end else None,
    )


# ----------------------------------------------------------------------------- sensitivity


def _sensitivity_row(label: str, spec: ModelSpec, effects: pd.DataFrame) -> dict:
    segments = growth_segments(effects)
    after = segments[segments["first_month"] >= spec.break_month]
    fastest = after.loc[after["estimate"].idxmax()]
    excess = effect_value(effects, "excess cases")
    through = re.search(r"to (\d{4}-\d{2}) versus", excess["effect"]).group(1)
    step = effect_value(effects, "level rate ratio at the break")
    return {
        "variant": label,
        "level ratio at the break": f"{step['estimate']:.2f} ({step['lower_95']:.2f}–{step['upper_95']:.2f})",
        "fastest monthly growth after the break": f"{narrative.format_percent(fastest['estimate'])} "
        f"({narrative.format_span(fastest['first_month'], fastest['last_month'])})",
        "excess cases to the end of the data": f"{narrative.format_count(excess['estimate'])} "
        f"({narrative.format_count(excess['lower_95'])}–{narrative.format_count(excess['upper_95'])}) "
        f"to {narrative.format_month(through)}",
    }


def sensitivity_table(analysis: TrendAnalysis) -> pd.DataFrame:
    """The headline effects as reported (first row, the same numbers as the effect table) and
    under each refit of `products.needs.sensitivity_requests`."""
    rows = [_sensitivity_row("as reported", analysis.spec, analysis.effects)]
    for refit in analysis.sensitivity:
        effects = refit.tables["effects"]
        rows.append(
            _sensitivity_row(
                refit.request.description, refit.request.spec, effects[effects["article"] == analysis.article]
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
