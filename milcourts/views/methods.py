"""The methods and validation report: the model in words, its assumptions, and how it was checked.

One report for the three articles (the model is joint), linked from every other report, instead of
the same pages in each. It reads the main fit with its checks (break-date profile, other
estimators) and the validation tables `make validate` wrote for this very ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from milcourts import paths
from milcourts.checks.posterior import AGREEMENT_SHARE, MONTE_CARLO_Z
from milcourts.checks.validation import COVERAGE_TARGET, VALIDATION_FILES
from milcourts.inputs.ledger import load_ledger
from milcourts.inputs.provenance import sha256_of
from milcourts.model.releases import LAST_DAYS, OWN_LAG_PRIOR_LOG_DAYS
from milcourts.model.spec import (
    APPROX_RELATIVE_SD,
    PRIOR_LOG_PHI,
    PRIOR_LOG_TAU_DAYS,
    PRIOR_LOGIT_BASE_SHARE,
)
from milcourts.products import public
from milcourts.products.needs import methods_requests
from milcourts.products.stage import FitProducts, load_or_fit
from milcourts.views import narrative
from milcourts.vocabulary import ALL_ARTICLES, ARTICLE_LABELS, ARTICLE_SHORT_LABELS, ARTICLES, COURT_FILINGS


@dataclass
class MethodsAnalysis:
    products: FitProducts  # the main fit, with its checks
    ledger: pd.DataFrame
    validation: dict[str, pd.DataFrame]  # make validate's tables, when they were made for this ledger

    @property
    def posterior(self) -> dict[str, pd.DataFrame]:
        """The full-posterior check of the main fit (its summary, intervals and parameters)."""
        tables = self.products.tables
        return {name: tables[f"posterior_{name}"] for name in ("summary", "intervals", "parameters")}


def read_validation(ledger_csv: Path, directory: Path | None = None) -> dict[str, pd.DataFrame]:
    """The tables `make validate` wrote for this very ledger file; empty if it has not run on it
    (the report then says so rather than showing another ledger's results)."""
    directory = directory or paths.processed_dir()
    inputs = directory / VALIDATION_FILES["inputs"]
    if not inputs.exists() or pd.read_csv(inputs)["ledger_sha256"].iloc[0] != sha256_of(ledger_csv):
        return {}
    return {
        key: pd.read_csv(directory / name, dtype={"article": str, "figure_id": str})
        for key, name in VALIDATION_FILES.items()
        if (directory / name).exists()
    }


def run_methods(ledger_csv: str | Path) -> MethodsAnalysis:
    path = paths.resolve(ledger_csv)
    ledger = load_ledger(path)
    (main,) = load_or_fit(methods_requests(ledger))
    return MethodsAnalysis(products=main, ledger=ledger, validation=read_validation(path))


def model_sentences(analysis: MethodsAnalysis) -> list[str]:
    """The modelling choices, as read off the fit."""
    fitted = analysis.products.fitted
    spec = analysis.products.request.spec
    used = fitted.obs.figures["is_used"]
    params = dict(zip(fitted.names, fitted.params))
    return narrative.describe_trend_methods(
        int(used.sum()),
        int((~used).sum()),
        spec.break_month,
        [narrative.format_month(pd.Period(spec.break_month, "M") + k) for k in fitted.knots],
        fitted.penalty,
        spec.likelihood,
        100 * np.sqrt(np.exp(params["log_phi"])),
        100 * np.sqrt(np.exp(params["log_alpha"])),
        float(np.exp(params["log_tau_days"])),
    )


def assumption_sentences(analysis: MethodsAnalysis | None = None) -> list[str]:
    """What the published figures cannot tell and the model therefore assumes, with the numbers
    of its priors, and the reporting delay the fit then found."""
    fitted_lag = None
    if analysis is not None:
        fitted = analysis.products.fitted
        i = fitted.names.index("log_tau_days")
        centre, sd = fitted.params[i], float(np.sqrt(fitted.cov[i, i]))
        fitted_lag = tuple(float(np.exp(centre + z * sd)) for z in (0.0, -1.96, 1.96))
    return narrative.describe_assumptions(
        month_cv_pct=100 * np.sqrt(np.exp(PRIOR_LOG_PHI[0])),
        lag_days=float(np.exp(PRIOR_LOG_TAU_DAYS[0])),
        lag_days_95=tuple(float(np.exp(PRIOR_LOG_TAU_DAYS[0] + z * PRIOR_LOG_TAU_DAYS[1])) for z in (-1.96, 1.96)),
        base_share=float(1 / (1 + np.exp(-PRIOR_LOGIT_BASE_SHARE[0]))),
        approx_pct=100 * APPROX_RELATIVE_SD,
        fitted_lag=fitted_lag,
    )


def release_paragraphs(analysis: MethodsAnalysis) -> list[str]:
    """How complete each release was (model.releases): measured where pairs exist, the shared lag
    elsewhere, and the provisional months that follow."""
    table = analysis.products.tables["release_completeness"]
    fitted = analysis.products.fitted
    revised = [
        narrative.RevisedRelease(
            release=pd.Timestamp(r["release_date"]),
            later=str(r["later_release_date"]),
            pairs=int(r["revised_pairs"]),
            observed=tuple(float(r[f"observed_share_of_later{s}"]) for s in ("", "_lower_95", "_upper_95")),
            expected=float(r["expected_share_of_later"]),
            own_lag_days=tuple(float(r[f"own_lag{s}"]) for s in ("_days", "_lower_95", "_upper_95")),
            own_share_posted=tuple(float(r[f"own_share_posted{s}"]) for s in ("", "_lower_95", "_upper_95")),
        )
        for _, r in table[table["revised_pairs"] > 0].iterrows()
    ]
    latest = table.loc[pd.to_datetime(table["release_date"]).idxmax()]
    flags = fitted.obs.is_provisional
    months = fitted.obs.months[flags]
    return narrative.describe_release_completeness(
        revised,
        n_releases=len(table),
        last_days=LAST_DAYS,
        shared_lag_days=float(np.exp(fitted.params[fitted.names.index("log_tau_days")])),
        prior_days=(
            float(np.exp(OWN_LAG_PRIOR_LOG_DAYS[0])),
            *(float(np.exp(OWN_LAG_PRIOR_LOG_DAYS[0] + z * OWN_LAG_PRIOR_LOG_DAYS[1])) for z in (-1.96, 1.96)),
        ),
        latest=(
            pd.Timestamp(latest["release_date"]),
            tuple(float(latest[f"share_posted{s}"]) for s in ("", "_lower_95", "_upper_95")),
        ),
        provisional=(str(months[0]), str(months[-1])) if len(months) else None,
    )


def selection_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    table = analysis.products.tables["model_selection"]
    return pd.DataFrame(
        {
            "strength of the penalty on trend changes": [f"{p:g}" for p in table["penalty"]],
            "approximate marginal likelihood (log)": [f"{v:.1f}" for v in table["log_marginal_likelihood"]],
            "effective number of parameters": [f"{v:.1f}" for v in table["effective_df"]],
            "chosen": np.where(table["is_chosen"], "yes", ""),
        }
    )


def break_profile(analysis: MethodsAnalysis) -> pd.DataFrame:
    return analysis.products.tables["break_profile"]


def break_sentence(analysis: MethodsAnalysis) -> str:
    profile = break_profile(analysis)
    best = profile.loc[profile["penalised_loglik"].idxmax(), "break_month"]
    inside = profile.loc[profile["is_in_95_interval"].astype(bool), "break_month"].tolist()
    return narrative.describe_break_profile(
        analysis.products.request.spec.break_month,
        best,
        inside,
        profile["break_month"].iloc[0],
        profile["break_month"].iloc[-1],
    )


def alternatives_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    table = analysis.products.tables["alternatives"]
    return pd.DataFrame(
        {
            "estimator": table["estimator"],
            "what": [narrative.plain_effect(e) for e in table["effect"]],
            "estimate (95% interval)": [
                f"{v:.2f} ({lo:.2f} to {hi:.2f})"
                for v, lo, hi in zip(table["estimate"], table["lower_95"], table["upper_95"])
            ],
        }
    )


def identification_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    """Per article: how well the figures before the break separate the earlier trend from the
    jump, and the share of cases the early running totals counted."""
    effects = analysis.products.tables["effects"]

    def pick(article: str, start: str) -> pd.Series:
        own = effects[(effects["article"] == article) & effects["effect"].str.startswith(start)]
        return own.iloc[0]

    rows = []
    for article in ARTICLES:
        correlation = pick(article, "correlation of pre-break slope")["estimate"]
        share = pick(article, "share of cases counted by 'since mobilisation' totals, from")
        early = pick(article, "share of cases counted by 'since mobilisation' totals, 2022")
        rows.append(
            {
                "article": narrative.capitalised(ARTICLE_LABELS[article]),
                "earlier trend and jump: correlation across simulations": f"{correlation:.2f}".replace("-", "−"),
                "share counted by early running totals, from 2023": narrative.format_share_range(share),
                "the same, September to December 2022": narrative.format_share_range(early),
            }
        )
    return pd.DataFrame(rows)


# Short enough for a chart's row labels, which otherwise take half its width.
CHART_ARTICLE_WORDS = {**ARTICLE_SHORT_LABELS, ALL_ARTICLES: "All three"}


def validation_scores(analysis: MethodsAnalysis) -> pd.DataFrame:
    """Held-out figures of every article, labelled for the validation chart by what they are."""
    frames = []
    for key in ("rolling_origin", "leave_one_out"):
        if key in analysis.validation:
            table = analysis.validation[key].copy()
            table["label"] = [
                f"{CHART_ARTICLE_WORDS.get(r.article, r.article)}, "
                f"{narrative.format_period_short(pd.Timestamp(r.period_start), pd.Timestamp(r.period_end))}: "
                + (f"model as of {pd.Timestamp(r.origin):%b %Y}" if key == "rolling_origin" else "model without it")
                for r in table.itertuples()
            ]
            frames.append(table)
    columns = ["label", "value", "value_qualifier", "predicted_median", "lower_95", "upper_95", "is_covered"]
    if frames and all("verdict" in f for f in frames):
        columns.append("verdict")
    return pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)


def validation_sentence(analysis: MethodsAnalysis) -> str | None:
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


FORECAST_WORDS = {
    "damped_trend": "the recent trend, damped",
    "local_level": "the level of the last confirmed months",
    "combination": "the average of the two",
    "naive": "benchmark: the latest published rate, carried forward",
    "drift": "benchmark: the latest rate moved along its last change",
}


def forecast_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    """The forecast methods and benchmarks as the rolling origin scored them, the one the reports
    use marked."""
    if "forecast_scores" not in analysis.validation:
        return pd.DataFrame()
    table = analysis.validation["forecast_scores"]
    used = analysis.products.request.spec.forecast_method
    every = table.get("coverage_95_every_figure", pd.Series(np.nan, index=table.index))
    return pd.DataFrame(
        {
            "figures scored": [f"{t} ({n})" for t, n in zip(table["targets"], table["figures"])],
            "forecast": [
                FORECAST_WORDS.get(m, m) + (" (used in the reports)" if m == used else "") for m in table["method"]
            ],
            "95% range covers the figure": [f"{100 * v:.0f}%" for v in table["coverage_95"]],
            "the same, every figure and bound": ["" if pd.isna(v) else f"{100 * v:.0f}%" for v in every],
            "mean interval score (lower is better)": [narrative.format_count(v) for v in table["mean_interval_score"]],
            "relative to the best benchmark": [f"{v:.2f}" for v in table["score_relative_to_best_benchmark"]],
        }
    )


def forecast_paragraphs(analysis: MethodsAnalysis) -> list[str]:
    """Which forecast the rule picks and whether the reports use it (none before validation ran)."""
    if "forecast_scores" not in analysis.validation:
        return []
    table = analysis.validation["forecast_scores"]
    chosen = table.loc[table["is_chosen"], "method"] if "is_chosen" in table else pd.Series(dtype=str)
    used = analysis.products.request.spec.forecast_method
    return [
        narrative.describe_forecast_choice(
            FORECAST_WORDS.get(used, used),
            FORECAST_WORDS.get(chosen.iloc[0], chosen.iloc[0]) if len(chosen) else None,
            COVERAGE_TARGET,
        )
    ]


def effect_identification_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    """Every effect of the reports with its identification check: what fitting left of the
    uncertainty assumed beforehand, and whether the reports state it."""
    effects = analysis.products.tables["effects"]
    checked = effects[effects["posterior_sd_to_prior_sd"].notna()]
    return pd.DataFrame(
        {
            "article": [narrative.capitalised(ARTICLE_LABELS[a]) for a in checked["article"]],
            "effect": [narrative.plain_effect(e) for e in checked["effect"]],
            "uncertainty left after fitting (share of the assumed)": [
                f"{100 * v:.0f}%" for v in checked["posterior_sd_to_prior_sd"]
            ],
            "stated in the reports": [
                "yes" if ok else f"no: {why}"
                for ok, why in zip(checked["is_estimable"], checked["not_estimable_because"])
            ],
        }
    )


# What the parameters the approximation understates most are, for readers.
PARAMETER_WORDS = {
    "log_phi": "how much the monthly counts vary around the trend",
    "log_alpha": "how much releases disagree beyond late posting",
    "log_tau_days": "how late cases are posted",
}


def posterior_paragraphs(analysis: MethodsAnalysis) -> list[str]:
    """Whether the sampler converged, how many intervals agree, and where and how much they differ."""
    summary = analysis.posterior["summary"].iloc[0]
    comparison = analysis.posterior["intervals"].dropna(subset=["width_ratio"])
    parameters = analysis.posterior["parameters"].sort_values("sd_ratio", ascending=False)
    worst = comparison.loc[comparison["width_ratio"].idxmax()]
    understated = [
        (PARAMETER_WORDS[p], r) for p, r in zip(parameters["parameter"], parameters["sd_ratio"]) if p in PARAMETER_WORDS
    ]
    return narrative.describe_posterior_check(
        chains=int(summary["chains"]),
        draws_per_chain=int(summary["draws_per_chain"]),
        max_rhat=float(summary["max_rhat"]),
        min_ess=float(min(summary["min_ess_bulk"], summary["min_ess_tail"])),
        divergences=int(summary["divergences"]),
        is_converged=bool(summary["is_converged"]),
        n_agree=int(summary["quantities_agreeing"]),
        n_differ=int(summary["quantities_differing"]),
        n_total=int(summary["quantities"]),
        typical_error=float(summary["median_shift_se_in_widths"]),
        error_multiple=MONTE_CARLO_Z,
        agreement_share=AGREEMENT_SHARE,
        median_width_ratio=float(comparison["width_ratio"].median()),
        widest=(
            narrative.capitalised(ARTICLE_LABELS[worst["article"]]),
            narrative.plain_effect(worst["quantity"]),
            float(worst["width_ratio"]),
        ),
        understated=[u for u in understated if u[1] > 1 + AGREEMENT_SHARE][:2],
    )


def posterior_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    """The headline quantities: each article's jump at the break, the extra cases since, and the
    latest complete year's total, with the reports' interval beside the sampled one."""
    comparison = analysis.posterior["intervals"]
    jump = comparison["quantity"].str.startswith("level rate ratio")
    excess = comparison["quantity"].str.startswith("excess cases")
    years = comparison.loc[comparison["kind"] == "yearly total", "quantity"]
    latest_year = comparison["quantity"] == years.max() if len(years) else False
    shown = comparison[jump | excess | latest_year]

    def interval(row, which: str) -> str:
        value, lo, hi = row[f"estimate_{which}"], row[f"lower_95_{which}"], row[f"upper_95_{which}"]
        if row["quantity"].startswith("level rate ratio"):
            return narrative.format_times(value, lo, hi)
        return narrative.format_estimate(value, lo, hi).removeprefix("about ")

    return pd.DataFrame(
        {
            "article": [narrative.capitalised(ARTICLE_LABELS[a].split(" (")[0]) for a in shown["article"]],
            "quantity": [
                narrative.plain_effect(q) + ("" if ok else " (not stated in the reports: too uncertain)")
                for q, ok in zip(shown["quantity"], shown["is_estimable"].astype(bool))
            ],
            "in the reports (normal approximation)": [interval(r, "laplace") for _, r in shown.iterrows()],
            "full posterior (sampled)": [interval(r, "posterior") for _, r in shown.iterrows()],
            "times as wide when sampled": [f"{v:.1f}" for v in shown["width_ratio"]],
        }
    )


def posterior_caption() -> str:
    return narrative.describe_posterior_table_caption()


def simulation_table(analysis: MethodsAnalysis) -> pd.DataFrame:
    if "simulation_summary" not in analysis.validation:
        return pd.DataFrame()
    table = analysis.validation["simulation_summary"]
    return pd.DataFrame(
        {
            "simulated ledgers": [f"{s} ({n:,} of them)" for s, n in zip(table["scenario"], table["replicates"])],
            "jump: 95% interval covers the truth": [f"{100 * v:.0f}%" for v in table["coverage_95_step"]],
            "trend change: 95% interval covers the truth": [
                f"{100 * v:.0f}%" for v in table["coverage_95_slope_change"]
            ],
            "a jump found (interval excludes none)": [
                f"{100 * v:.0f}%" for v in table["rate_step_interval_excludes_no_change"]
            ],
        }
    )


def data_package(analysis: MethodsAnalysis) -> public.DataPackage:
    tables = analysis.products.tables
    return public.DataPackage(
        name="milcourts-methods",
        title="How the numbers are estimated and checked",
        description="The model's choice of smoothing, the break-date profile, the other estimators of the "
        "break, the full-posterior check of the intervals and how complete each release was, from the main fit "
        "of the project's ledger.",
        tables=tuple(
            (table, public.public_frame(table, tables))
            for table in (
                public.MODEL_SELECTION,
                public.BREAK_PROFILE,
                public.ALTERNATIVES,
                public.POSTERIOR_CHECK,
                public.RELEASE_COMPLETENESS,
            )
        ),
        sources=tuple(public.sources_of(analysis.ledger[analysis.ledger["series"] == COURT_FILINGS])),
    )


def break_caption(analysis: MethodsAnalysis) -> str:
    return narrative.describe_break_caption()


def break_alt_text(analysis: MethodsAnalysis) -> str:
    profile = break_profile(analysis)
    best = profile.loc[profile["penalised_loglik"].idxmax(), "break_month"]
    return narrative.describe_break_alt_text(len(profile), best)


def alternatives_caption() -> str:
    return narrative.describe_alternatives_caption()


def identification_caption() -> str:
    return narrative.describe_identification_caption()


def simulation_caption() -> str:
    return narrative.describe_simulation_caption()
