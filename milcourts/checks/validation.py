"""Is the model calibrated and useful? Measured three ways, all written to data/processed/.

1. Leave-one-out: refit without each published single month or short window; does its 95%
   predictive interval (as published: its vintage's completeness, count noise, release error)
   cover the value?
2. Rolling origin by vintage: fit on what was published by each release date, score the figures
   of the next release against a naive benchmark (the latest known daily rate carried forward).
3. Simulation recovery on the real observation pattern: the ledger's own usable figures, with
   values drawn from a known monthly series; bias and coverage of the break effects, and how often
   a break is "found" when there is none.

Refits use the penalty chosen on the full ledger (re-selecting it every time would multiply the
cost by the grid size); that is stated in every output's method column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special

from milcourts import paths
from milcourts.checks.synthetic import Truth, publication_weights, publish, published_values, simulate_counts
from milcourts.inputs.constraints import ConstraintView, build_constraint_view
from milcourts.inputs.ledger import published_by
from milcourts.model.fit import FittedModel, fit_filings_model, fit_observations
from milcourts.model.likelihood import unpack
from milcourts.model.observations import Observations, supported_knots
from milcourts.model.runtime import model_numerics, process_pool, stop_now
from milcourts.model.simulate import published_figure_draws, simulate
from milcourts.model.spec import (
    FORECAST_METHODS,
    PRIOR_LOG_PHI,
    PRIOR_LOGIT_BASE_SHARE,
    PRIOR_LOGIT_EARLY_SHARE,
    ModelSpec,
)
from milcourts.vocabulary import ARTICLES

SHORT_WINDOW_MAX_DAYS = 92  # "short window": a quarter at most
EARLIEST_ORIGIN = pd.Timestamp("2023-04-01")  # before it the ledger has almost nothing to learn from


@dataclass(frozen=True)
class ValidationSettings:
    penalty: float
    n_draws: int = 1000
    seed: int = 20240301
    condition: bool = True  # predictive draws conditioned on the other published figures
    # the fit on the whole ledger: every refit starts from its optimum (the refit's optimum is its
    # own; only the optimiser's path is shorter)
    full_fit: FittedModel | None = None


def _spec_for(settings: ValidationSettings, base: ModelSpec = ModelSpec(), **changes) -> ModelSpec:
    return replace(base, **{"penalty_grid": (settings.penalty,), "n_draws": settings.n_draws, **changes})


def _interval(draws: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(draws, [0.025, 0.5, 0.975])
    return float(lo), float(mid), float(hi)


# Verdicts on a published figure against a prediction (predictive draws of the figure as published).
CONSISTENT, IN_TENSION, INCONSISTENT = "consistent", "in tension", "inconsistent"


def bound_met_share(value: float, qualifier: str, predicted: np.ndarray) -> float | None:
    """For a bound, the share of predictive draws that meet it ("at least v": draws >= v); None
    for a point figure."""
    if qualifier == "at_least":
        return float(np.mean(predicted >= value))
    if qualifier == "at_most":
        return float(np.mean(predicted <= value))
    return None


def verdict(value: float, qualifier: str, predicted: np.ndarray) -> str:
    """Whether a published figure agrees with a prediction, said as a reader would.

    A point figure is consistent inside the 95% interval and inconsistent outside it. A bound
    ("at least 1,000") is consistent only when the prediction meets it more likely than not: a
    model whose median is 724 does not agree with "at least 1,000" merely because its upper tail
    reaches 1,000. It is in tension when the prediction meets it with probability between 2.5% and
    50%, and inconsistent below 2.5% (the whole 95% interval on the wrong side).
    """
    share = bound_met_share(value, qualifier, predicted)
    if share is None:
        lo, hi = np.quantile(predicted, [0.025, 0.975])
        return CONSISTENT if lo <= value <= hi else INCONSISTENT
    if share >= 0.5:
        return CONSISTENT
    return IN_TENSION if share >= 0.025 else INCONSISTENT


def _months_needed(view: ConstraintView, end: pd.Timestamp) -> int:
    return max(0, (end.to_period("M") - view.months[-1]).n)


def leave_one_out(ledger: pd.DataFrame, settings: ValidationSettings) -> pd.DataFrame:
    """Refit without each single-month or short-window figure and score its predictive interval."""
    view = build_constraint_view(ledger)
    figures = view.figures
    days = (figures["period_end"] - figures["period_start"]).dt.days + 1
    targets = figures[(days <= SHORT_WINDOW_MAX_DAYS) & figures["is_preferred"]]
    rng = np.random.default_rng(settings.seed)
    records = []
    for target in targets.itertuples():
        kept = ledger[ledger["figure_id"] != target.figure_id]
        fitted = fit_filings_model(build_constraint_view(kept), _spec_for(settings), warm_start=settings.full_fit)
        draws = simulate(fitted, seed=settings.seed, condition=settings.condition)
        predictive = published_figure_draws(
            draws,
            target.article,
            target.period_start,
            target.period_end,
            target.vintage_date,
            target.value_qualifier,
            rng,
        )
        lo, mid, hi = _interval(predictive)
        records.append(
            {
                "figure_id": target.figure_id,
                "article": target.article,
                "period_start": target.period_start.date(),
                "period_end": target.period_end.date(),
                "value": target.value,
                "value_qualifier": target.value_qualifier,
                "predicted_median": round(mid, 1),
                "lower_95": round(lo, 1),
                "upper_95": round(hi, 1),
                "verdict": verdict(target.value, target.value_qualifier, predictive),
                "is_covered": verdict(target.value, target.value_qualifier, predictive) == CONSISTENT,
                "method": f"refit without the figure (penalty {settings.penalty}); 95% predictive interval "
                "of the figure as published",
            }
        )
    return pd.DataFrame.from_records(records)


def _count_figures(known: pd.DataFrame, article: str) -> pd.DataFrame:
    """The article's preferred period counts (not running totals): what a benchmark reads a
    monthly rate from. A running total's average since 2022 is not the current rate."""
    same = known[(known["article"] == article) & known["is_preferred"] & (known["measure"] == "count")].copy()
    same["days"] = (same["period_end"] - same["period_start"]).dt.days + 1
    return same[same["value_qualifier"].isin(("exact", "approx"))]


def _benchmark_total(known: pd.DataFrame, target, rate_at) -> float | None:
    """A benchmark's forecast of a figure on the figure's own quantity: for a running total, the
    latest known value of the same running total plus the rate over the days it has not seen; for a
    period count, the rate over the period. `rate_at(day)` is the benchmark's daily rate."""
    start, end = target.period_start, target.period_end
    if target.measure == "cumulative":
        same = known[
            (known["article"] == target.article)
            & (known["measure"] == "cumulative")
            & (known["period_start"] == start)
            & (known["period_end"] < end)
            & known["value_qualifier"].isin(("exact", "approx"))
        ]
        if same.empty:
            return None
        base = same.loc[same["period_end"].idxmax()]
        start, known_value = base["period_end"] + pd.Timedelta(days=1), float(base["value"])
    else:
        known_value = 0.0
    days = (end - start).days + 1
    rate = rate_at(start + (end - start) / 2)
    return None if rate is None else known_value + rate * days


def _naive_forecast(known: pd.DataFrame, target) -> float | None:
    """The latest known daily rate of the article (the shortest of its latest-ending period
    counts), carried forward, on the target's own quantity."""
    same = _count_figures(known, target.article)
    if same.empty:
        return None
    latest = same[same["period_end"] == same["period_end"].max()]
    best = latest.loc[latest["days"].idxmin()]
    rate = best["value"] / best["days"]
    return _benchmark_total(known, target, lambda _: rate)


def _drift_forecast(known: pd.DataFrame, target) -> float | None:
    """The naive rate moved along the growth between the article's two latest period counts that
    do not overlap (their rates, at their mid-points), on the target's own quantity."""
    same = _count_figures(known, target.article).sort_values(["period_end", "days"], ascending=[False, True])
    if same.empty:
        return None
    latest = same.iloc[0]
    earlier = same[same["period_end"] < latest["period_start"]]
    if earlier.empty:
        return None
    previous = earlier.iloc[0]
    middle = lambda r: r["period_start"] + (r["period_end"] - r["period_start"]) / 2  # noqa: E731
    gap = (middle(latest) - middle(previous)).days
    rate_latest, rate_previous = latest["value"] / latest["days"], previous["value"] / previous["days"]
    if gap <= 0 or rate_latest <= 0 or rate_previous <= 0:
        return None
    growth = np.log(rate_latest / rate_previous) / gap
    return _benchmark_total(known, target, lambda day: rate_latest * np.exp(growth * (day - middle(latest)).days))


def interval_score(value: float, lower: float, upper: float, alpha: float = 0.05) -> float:
    """Interval (Winkler) score of a central (1 - alpha) interval: its width plus 2/alpha times
    the distance by which the value falls outside it; lower is better (Gneiting & Raftery 2007)."""
    return (upper - lower) + (2 / alpha) * max(lower - value, 0.0) + (2 / alpha) * max(value - upper, 0.0)


POINT_QUALIFIERS = ("exact", "approx")  # figures an interval score can be computed for
BENCHMARKS = ("naive", "drift")


def rolling_origin(ledger: pd.DataFrame, settings: ValidationSettings) -> pd.DataFrame:
    """Fit on what each release date knew; score the figures first published in the next release.

    Each origin is fitted once and forecast by every method of FORECAST_METHODS (they differ only
    past the data); the naive and drift benchmarks forecast the same figures on their own quantity.
    Columns: the spec's own method as predicted_*, then per method `<method>_median/_lower_95/
    _upper_95`; `reaches_past_data` marks figures whose period ends after the origin's last month."""
    full = build_constraint_view(ledger).figures
    dated = full[full["is_vintage_known"] & (full["value_qualifier"] != "at_most")]
    origins = sorted(d for d in dated["vintage_date"].unique() if pd.Timestamp(d) >= EARLIEST_ORIGIN)
    rng = np.random.default_rng(settings.seed)
    records = []
    for origin, following in zip(origins, origins[1:]):
        origin, following = pd.Timestamp(origin), pd.Timestamp(following)
        targets = dated[(dated["vintage_date"] > origin) & (dated["vintage_date"] <= following)]
        known_view = build_constraint_view(published_by(ledger, origin))
        if targets.empty or known_view.figures.empty:
            continue
        spec = _spec_for(settings, forecast_months=_months_needed(known_view, targets["period_end"].max()) + 1)
        fitted = fit_filings_model(known_view, spec, warm_start=settings.full_fit)
        last_day = known_view.months[-1].end_time.normalize()
        predictions = {}
        for method in FORECAST_METHODS:
            draws = simulate(
                replace(fitted, spec=replace(spec, forecast_method=method)),
                seed=settings.seed,
                condition=settings.condition,
            )
            predictions[method] = [
                published_figure_draws(
                    draws, t.article, t.period_start, t.period_end, t.vintage_date, t.value_qualifier, rng
                )
                for t in targets.itertuples()
            ]
        for i, target in enumerate(targets.itertuples()):
            predictive = predictions[spec.forecast_method][i]
            lo, mid, hi = _interval(predictive)
            said = verdict(target.value, target.value_qualifier, predictive)
            record = {
                "origin": origin.date(),
                "figure_id": target.figure_id,
                "article": target.article,
                "measure": target.measure,
                "period_start": target.period_start.date(),
                "period_end": target.period_end.date(),
                "months_after_origin": max(0, (target.period_end.to_period("M") - origin.to_period("M")).n),
                "reaches_past_data": bool(target.period_end > last_day),
                "value": target.value,
                "value_qualifier": target.value_qualifier,
                "predicted_median": round(mid, 1),
                "lower_95": round(lo, 1),
                "upper_95": round(hi, 1),
                "verdict": said,
                "is_covered": said == CONSISTENT,
                "model_abs_error": abs(mid - target.value) if target.value_qualifier != "at_least" else np.nan,
            }
            for method in FORECAST_METHODS:
                m_lo, m_mid, m_hi = _interval(predictions[method][i])
                record.update(
                    {
                        f"{method}_median": m_mid,
                        f"{method}_lower_95": m_lo,
                        f"{method}_upper_95": m_hi,
                        f"{method}_consistent": verdict(target.value, target.value_qualifier, predictions[method][i])
                        == CONSISTENT,
                    }
                )
            for name, forecast in (
                ("naive", _naive_forecast(known_view.figures, target)),
                ("drift", _drift_forecast(known_view.figures, target)),
            ):
                record[f"{name}_forecast"] = forecast
                record[f"{name}_abs_error"] = (
                    abs(forecast - target.value)
                    if forecast is not None and target.value_qualifier != "at_least"
                    else np.nan
                )
            records.append(record)
    scores = pd.DataFrame.from_records(records)
    return _benchmark_intervals(scores) if len(scores) else scores


def _benchmark_intervals(scores: pd.DataFrame) -> pd.DataFrame:
    """95% intervals for the benchmarks, which have none of their own: the 2.5% and 97.5% points
    of their log errors (value / forecast) at every *other* origin, applied to each forecast. The
    benchmarks get calibration the model is not given, so beating them is the stronger claim."""
    scores = scores.copy()
    point = scores["value_qualifier"].isin(POINT_QUALIFIERS)
    for name in BENCHMARKS:
        forecast = pd.to_numeric(scores[f"{name}_forecast"], errors="coerce")
        usable = point & (forecast > 0) & (scores["value"] > 0)
        log_error = np.log(scores["value"] / forecast).where(usable)
        lower, upper = np.full(len(scores), np.nan), np.full(len(scores), np.nan)
        for i in np.nonzero((forecast > 0).to_numpy())[0]:
            others = log_error[(scores["origin"] != scores["origin"].iloc[i]) & usable].dropna()
            if len(others) >= 5:
                q_lo, q_hi = np.quantile(others, [0.025, 0.975])
                lower[i], upper[i] = forecast.iloc[i] * np.exp(q_lo), forecast.iloc[i] * np.exp(q_hi)
        scores[f"{name}_lower_95"], scores[f"{name}_upper_95"] = lower, upper
    return scores


def forecast_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean interval score and 95% coverage of every forecast method and benchmark, over the point
    figures every one of them forecast, for all such figures and for those reaching past the data."""
    methods = (*FORECAST_METHODS, *BENCHMARKS)
    point = scores[scores["value_qualifier"].isin(POINT_QUALIFIERS)].copy()
    for method in methods:
        lower, upper = point[f"{method}_lower_95"].astype(float), point[f"{method}_upper_95"].astype(float)
        point[f"{method}_score"] = [
            interval_score(v, lo, hi) if np.isfinite(lo) and np.isfinite(hi) else np.nan
            for v, lo, hi in zip(point["value"], lower, upper)
        ]
        point[f"{method}_covered"] = (point["value"] >= lower) & (point["value"] <= upper)
    common = point.dropna(subset=[f"{m}_score" for m in methods])
    rows = []
    every_figure = {m: scores[f"{m}_consistent"].mean() for m in FORECAST_METHODS if f"{m}_consistent" in scores}
    for subset, frame in (
        ("all figures", common),
        ("figures reaching past the data", common[common["reaches_past_data"]]),
    ):
        best_benchmark = min(frame[f"{b}_score"].mean() for b in BENCHMARKS) if len(frame) else np.nan
        for method in methods:
            mean_score = frame[f"{method}_score"].mean() if len(frame) else np.nan
            rows.append(
                {
                    "targets": subset,
                    "method": method,
                    "is_benchmark": method in BENCHMARKS,
                    "figures": len(frame),
                    "coverage_95": frame[f"{method}_covered"].mean() if len(frame) else np.nan,
                    "mean_interval_score": mean_score,
                    "score_relative_to_best_benchmark": mean_score / best_benchmark,
                    # over every scored figure, bounds included (benchmarks give no verdict on bounds)
                    "coverage_95_every_figure": every_figure.get(method, np.nan),
                }
            )
    table = pd.DataFrame(rows)
    table["is_chosen"] = table["method"] == choose_forecast_method(table)
    return table


# The rule that picks the forecast (issue targets): among the methods whose rolling-origin coverage
# of every scored figure lies in this range, the lowest mean interval score on the figures that
# reach past the data; if none is calibrated, the best-covering one.
COVERAGE_TARGET = (0.90, 0.98)


def choose_forecast_method(table: pd.DataFrame) -> str:
    """Apply the rule above to a forecast_scores table (model methods only)."""
    past = table[(table["targets"] == "figures reaching past the data") & ~table["is_benchmark"]]
    if past.empty or past["mean_interval_score"].isna().all():
        return ModelSpec().forecast_method
    low, high = COVERAGE_TARGET
    calibrated = past[past["coverage_95_every_figure"].between(low, high)]
    if calibrated.empty:
        return str(past.loc[past["coverage_95_every_figure"].idxmax(), "method"])
    return str(calibrated.loc[calibrated["mean_interval_score"].idxmin(), "method"])


def summarise_rolling_origin(scores: pd.DataFrame) -> pd.DataFrame:
    """Coverage and the model's error relative to the naive benchmark (below 1: model better)."""
    scored = scores.dropna(subset=["model_abs_error", "naive_abs_error"])
    return pd.DataFrame(
        [
            {
                "origins": scores["origin"].nunique(),
                "targets": len(scores),
                "coverage_95": scores["is_covered"].mean(),
                "targets_with_naive": len(scored),
                "model_mae": scored["model_abs_error"].mean(),
                "naive_mae": scored["naive_abs_error"].mean(),
                "relative_mae": scored["model_abs_error"].mean() / scored["naive_abs_error"].mean(),
                "median_relative_error": (scored["model_abs_error"] / scored["naive_abs_error"].clip(lower=1)).median(),
                "drift_mae": scored["drift_abs_error"].mean() if "drift_abs_error" in scored else np.nan,
                "relative_mae_vs_drift": (
                    scored["model_abs_error"].mean() / scored["drift_abs_error"].mean()
                    if "drift_abs_error" in scored
                    else np.nan
                ),
            }
        ]
    )


# ----------------------------------------------------------------------------- simulation recovery


def pattern_of(view: ConstraintView) -> pd.DataFrame:
    """The real observation pattern: every figure the model uses as an observation, values dropped."""
    figures = view.figures[view.figures["is_preferred"]]
    return pd.DataFrame(
        {
            "article": figures["article"],
            "period_start": figures["period_start"],
            "period_end": figures["period_end"],
            "source_date": figures["vintage_date"],
        }
    ).reset_index(drop=True)


def truth_for(view: ConstraintView, spec: ModelSpec, with_break: bool, phi: float | None = None) -> Truth:
    """Known effects on the real months: pre-break levels like the ledger's, a step and a phase-in.
    `phi` None: each replicate draws its month-level dispersion from the model's prior."""
    months = view.months
    break_index = int((pd.Period(spec.break_month, "M") - months[0]).n)
    knots = supported_knots(spec, len(months), break_index)
    coef = np.zeros((3, 3 + len(knots)))
    coef[:, 0] = np.log(np.array([55.0, 3.0, 1.0]) / 30.4)
    coef[:, 1] = 0.24
    if with_break:
        coef[:, 2] = np.log(2.0)
        coef[:, 3] = 2.4 - 0.24
        coef[:, 4] = -2.4 + 0.6
    # "since mobilisation" totals published in the model's prior-median counting base
    base = (float(special.expit(PRIOR_LOGIT_BASE_SHARE[0])), float(special.expit(PRIOR_LOGIT_EARLY_SHARE[0])))
    return Truth(
        months=months,
        break_month=spec.break_month,
        knot_offsets_months=knots,
        coef=coef,
        phi=phi,
        mobilisation_base_share=base,
    )


def _one_replicate(args) -> dict:
    with model_numerics():  # a worker from the fork server does not inherit the parent's limits
        return _replicate(*args)


@dataclass(frozen=True)
class ReplicatePlan:
    """What every replicate of one scenario shares: the truth (its phi drawn per replicate), the
    fitted figures' publication weights (fitted figures x articles x months), the template's
    observations (a replicate changes only their values) and the fit every replicate starts from.
    Computed once: publishing and preparing observations again took a quarter of a replicate."""

    truth: Truth
    spec: ModelSpec
    weights: np.ndarray
    template: Observations
    warm_start: FittedModel


def _replicate(plan: ReplicatePlan, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth = plan.truth
    if truth.phi is None:
        # phi is not identified by the ledger (model.PRIOR_LOG_PHI): each replicate's month-level
        # dispersion is drawn from that prior, so coverage is measured over the range of
        # dispersions the model admits, not at one value that happens to suit it
        truth = replace(truth, phi=float(np.exp(rng.normal(*PRIOR_LOG_PHI))))
    values = published_values(plan.weights, simulate_counts(truth, rng))
    fitted = fit_observations(plan.template.with_values(values), plan.spec, warm_start=plan.warm_start)
    # only the effects' parameter draws are scored: drawn as simulate() draws them (same seed,
    # same stream), without the month counts it would add
    params = np.random.default_rng(seed).multivariate_normal(
        fitted.params, fitted.cov, size=plan.spec.n_draws, method="eigh"
    )
    c = unpack(params, len(fitted.knots))[0][:, ARTICLES.index("337"), :]
    true = truth.coef[ARTICLES.index("337")]
    step_lo, step_hi = np.quantile(c[:, 2], [0.025, 0.975])
    change_lo, change_hi = np.quantile(c[:, 3], [0.025, 0.975])
    return {
        "seed": seed,
        "true_phi": truth.phi,
        "true_log_step": true[2],
        "estimated_log_step": float(np.median(c[:, 2])),
        "step_lower_95": float(step_lo),
        "step_upper_95": float(step_hi),
        "step_covered": bool(step_lo <= true[2] <= step_hi),
        "step_excludes_zero": bool(step_lo > 0 or step_hi < 0),
        "true_slope_change_per_year": true[3],
        "estimated_slope_change_per_year": float(np.median(c[:, 3])),
        "slope_change_lower_95": float(change_lo),
        "slope_change_upper_95": float(change_hi),
        "slope_change_covered": bool(change_lo <= true[3] <= change_hi),
        "slope_change_excludes_zero": bool(change_lo > 0 or change_hi < 0),
        "converged": bool(fitted.selection["converged"].all()),
    }


def replicate_plan(
    view: ConstraintView, settings: ValidationSettings, with_break: bool, phi: float | None
) -> ReplicatePlan:
    spec = _spec_for(settings, n_draws=400)
    truth = truth_for(view, spec, with_break, phi)
    pattern = pattern_of(view)
    # one replicate fitted from scratch gives every other one its start and curvature, and its
    # view is every replicate's template (one consistent series: no conflicts to search for)
    typical = replace(truth, phi=phi or float(np.exp(PRIOR_LOG_PHI[0])))
    first = publish(typical, simulate_counts(typical, np.random.default_rng(settings.seed - 1)), pattern)
    template = build_constraint_view(first, with_conflicts=False)
    warm_start = fit_filings_model(template, spec)
    # the pattern's rows are the ledger's figures F001, F002, ... in order (synthetic.publish)
    fitted_rows = warm_start.obs.figures.loc[warm_start.obs.figures["is_used"], "figure_id"].str[1:].astype(int) - 1
    weights = publication_weights(truth, pattern)[fitted_rows.to_numpy()]
    return ReplicatePlan(truth, spec, weights, warm_start.obs, warm_start)


def _simulation_jobs(
    view: ConstraintView, settings: ValidationSettings, replicates: int, with_break: bool, phi: float | None
) -> list[tuple]:
    plan = replicate_plan(view, settings, with_break, phi)
    return [(plan, settings.seed + i) for i in range(replicates)]


def _simulation_frame(rows: list[dict], with_break: bool, phi: float | None) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    scenario = "break" if with_break else "no break"
    if phi is not None:
        scenario += f", phi fixed at {phi:g}"
    frame.insert(0, "scenario", scenario)
    return frame


def simulation_study(
    view: ConstraintView,
    settings: ValidationSettings,
    replicates: int,
    with_break: bool,
    workers: int = 2,
    phi: float | None = None,
) -> pd.DataFrame:
    """Replicates on the real observation pattern (values simulated, all published complete).
    `phi` fixes the true month-level dispersion (a stress test); None draws it from the prior."""
    jobs = _simulation_jobs(view, settings, replicates, with_break, phi)
    if workers > 1:
        with process_pool(workers) as pool:
            rows = list(pool.map(_one_replicate, jobs, chunksize=max(1, replicates // (4 * workers))))
    else:
        rows = [_one_replicate(job) for job in jobs]
    return _simulation_frame(rows, with_break, phi)


def summarise_simulation(replicates: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for scenario, group in replicates.groupby("scenario", sort=False):
        rows.append(
            {
                "scenario": scenario,
                "replicates": len(group),
                "converged": group["converged"].mean(),
                "bias_log_step": (group["estimated_log_step"] - group["true_log_step"]).mean(),
                "coverage_95_step": group["step_covered"].mean(),
                "bias_slope_change_per_year": (
                    group["estimated_slope_change_per_year"] - group["true_slope_change_per_year"]
                ).mean(),
                "coverage_95_slope_change": group["slope_change_covered"].mean(),
                "rate_step_interval_excludes_no_change": group["step_excludes_zero"].mean(),
                "rate_slope_change_interval_excludes_zero": group["slope_change_excludes_zero"].mean(),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the whole study


def validation_inputs(ledger_csv, replicates: int) -> pd.DataFrame:
    """What the validation was run on, so a report never shows another ledger's results."""
    from milcourts.inputs.provenance import sha256_of

    return pd.DataFrame([{"ledger_sha256": sha256_of(ledger_csv), "replicates": replicates}])


VALIDATION_FILES = {
    "inputs": paths.VALIDATION_INPUTS_CSV,
    "leave_one_out": "validation_leave_one_out.csv",
    "rolling_origin": "validation_rolling_origin.csv",
    "rolling_origin_summary": "validation_rolling_origin_summary.csv",
    "forecast_scores": "validation_forecast_scores.csv",
    "simulation": "validation_simulation_replicates.csv",
    "simulation_summary": "validation_simulation_summary.csv",
}


# Replicates per task handed to a worker: small enough that this process and the worker finish
# within about half a second of each other (one replicate takes about 0.05 s), large enough that
# sending the scenario's plan with each task costs nothing to speak of.
REPLICATES_PER_TASK = 5


def _replicate_task(jobs: list[tuple]) -> list[dict]:
    # the thread limits set once for the task: setting them finds the process's BLAS libraries
    # again each time (about 6 ms, a tenth of a replicate)
    with model_numerics():
        return [_replicate(*job) for job in jobs]


def _run_shared(pool, function, tasks: list, own_work) -> tuple[object, list]:
    """`own_work()` in this process while the pool runs `function(task)` from the front of the
    queue; then this process takes tasks from the back (each one not yet started is cancelled there
    and run here) until the two meet. Results in the tasks' order. On two cores, two processes
    sharing the work beat three (a pool of two beside this one). On an error nothing queued is left
    to run."""
    futures = [pool.submit(function, task) for task in tasks]
    try:
        own = own_work()
        results: list = [None] * len(tasks)
        for i in reversed(range(len(tasks))):
            results[i] = function(tasks[i]) if futures[i].cancel() else futures[i].result()
    except BaseException:
        stop_now(pool)  # an error or an interruption: nothing queued runs, a running task stops
        raise
    return own, results


def run_validation(ledger: pd.DataFrame, replicates: int = 200, workers: int = 2) -> dict[str, pd.DataFrame]:
    """Everything `make validate` writes; the penalty is the one chosen on the full ledger.
    `workers`: processes in all, this one included (the simulation's replicates are shared
    between them; leave-one-out and the rolling origin run here)."""
    view = build_constraint_view(ledger)
    full_fit = fit_filings_model(view)
    settings = ValidationSettings(penalty=full_fit.penalty, full_fit=full_fit)
    scenarios = (True, False)  # with a break, without
    jobs = [job for with_break in scenarios for job in _simulation_jobs(view, settings, replicates, with_break, None)]
    tasks = [jobs[i : i + REPLICATES_PER_TASK] for i in range(0, len(jobs), REPLICATES_PER_TASK)]

    def refits():
        return leave_one_out(ledger, settings), rolling_origin(ledger, settings)

    if workers > 1:
        # imported here: only a process that fits loads JAX (see model.fit._objective)
        from milcourts.model.derivatives import exported_compilations, install_compilations

        # the worker is given this process's compilations (the full fit's and the replicates'
        # shapes): it starts fitting replicates about 15 s sooner than if it compiled them again
        with process_pool(workers - 1, install_compilations, (exported_compilations(),)) as pool:
            (loo, rolling), results = _run_shared(pool, _replicate_task, tasks, refits)
    else:
        (loo, rolling), results = refits(), [_replicate_task(task) for task in tasks]
    rows = [row for task in results for row in task]
    simulation = pd.concat(
        [
            _simulation_frame(rows[k * replicates : (k + 1) * replicates], with_break, None)
            for k, with_break in enumerate(scenarios)
        ],
        ignore_index=True,
    )
    return {
        "leave_one_out": loo,
        "rolling_origin": rolling,
        "rolling_origin_summary": summarise_rolling_origin(rolling),
        "forecast_scores": forecast_scores(rolling),
        "simulation": simulation,
        "simulation_summary": summarise_simulation(simulation),
    }
