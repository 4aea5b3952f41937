"""The fit as tables: monthly estimates with prediction intervals, effects, and the fit to each figure.

These are the model's data products (written to data/processed and published with the reports);
column names carry their units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from milcourts.model.fit import FittedModel
from milcourts.model.likelihood import figure_expectations
from milcourts.model.observations import MONTHS_PER_YEAR, month_index
from milcourts.model.simulate import Draws, article_rows, window_draws
from milcourts.model.spec import MOBILISATION_BASE_EARLY_MONTHS, ParameterLayout, phi_prior
from milcourts.vocabulary import ALL_ARTICLES, ARTICLES


def monthly_filings_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """data/processed/monthly_filings.csv: prediction intervals for each month's count."""
    figures = fitted.obs.figures
    single = figures[figures["period_start"].dt.to_period("M") == figures["period_end"].dt.to_period("M")]
    published = {(r.article, r.period_start.to_period("M")) for r in single.itertuples()}
    provisional = np.zeros(len(draws.months), dtype=bool)
    provisional[: draws.n_observed] = fitted.obs.is_provisional
    frames = []
    for article in (*ARTICLES, ALL_ARTICLES):
        rows = article_rows(article)
        counts = draws.counts[:, rows, :].sum(axis=1)
        mu = draws.mu[:, rows, :].sum(axis=1)
        q = np.quantile(counts, [0.025, 0.1, 0.9, 0.975], axis=0)
        # modelled months: expected count given the published figures; forecast: the model mean
        expected = np.where(np.arange(len(draws.months)) < draws.n_observed, counts.mean(axis=0), mu.mean(axis=0))
        frames.append(
            pd.DataFrame(
                {
                    "article": article,
                    "month": draws.months.astype(str),
                    "expected": expected.round(1),
                    "lower_80": q[1],
                    "upper_80": q[2],
                    "lower_95": q[0],
                    "upper_95": q[3],
                    "has_published_month": [(article, m) in published for m in draws.months],
                    "is_provisional": provisional,
                    "is_forecast": np.arange(len(draws.months)) >= draws.n_observed,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def yearly_totals_table(draws: Draws, monthly: pd.DataFrame) -> pd.DataFrame:
    """Cases received per calendar year, per article and in all: the expected total is the sum of
    the year's rows of the monthly table (so a reader can add them up and get the same number);
    the 80% and 95% prediction intervals come from the draws of the year's total (an interval of a
    sum is not the sum of the months' intervals)."""
    months = draws.months
    years = sorted(set(months.year))
    records = []
    for article in (*ARTICLES, ALL_ARTICLES):
        counts = draws.counts[:, article_rows(article), :].sum(axis=1)
        rows = monthly[monthly["article"] == article]
        for year in years:
            in_year = np.asarray(months.year == year)
            q = np.quantile(counts[:, in_year].sum(axis=1), [0.025, 0.1, 0.9, 0.975])
            of_year = rows[rows["month"].str.startswith(f"{year}-")]
            records.append(
                {
                    "article": article,
                    "year": year,
                    "months": int(in_year.sum()),
                    "forecast_months": int(of_year["is_forecast"].sum()),
                    "expected": round(float(of_year["expected"].sum()), 1),
                    "lower_80": q[1],
                    "upper_80": q[2],
                    "lower_95": q[0],
                    "upper_95": q[3],
                }
            )
    return pd.DataFrame.from_records(records)


def _interval(samples: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(samples, [0.025, 0.5, 0.975])
    return float(mid), float(lo), float(hi)


def _monthly_growth_pct(slope_per_year: np.ndarray) -> np.ndarray:
    return 100 * np.expm1(slope_per_year / MONTHS_PER_YEAR)


# An effect whose posterior sd is more than this share of its prior sd is mostly prior: the data
# barely moved it (methods.md section 8, point 3). One whose 95% interval spans more than
# MAX_INTERVAL_FACTOR (upper / lower, for a ratio or a positive count) says nothing a reader can use.
MAX_POSTERIOR_TO_PRIOR_SD = 0.5
MAX_INTERVAL_FACTOR = 10.0


def effect_loadings(fitted: FittedModel, article: str) -> dict[str, np.ndarray]:
    """The parameter combinations behind an article's log-scale effects, for the identification
    check: "step" (the log jump), "pre" (the pre-break slope) and "segment j" (the slope after the
    j-th knot). For 338 and 332 the pre-break slope is Art. 337's plus a shrunk deviation; what the
    article's own figures could tell is the deviation, so "pre" is that alone (the rest is borrowed)."""
    layout = ParameterLayout(len(fitted.knots))
    i = ARTICLES.index(article)
    size = layout.size
    vectors = {}
    step = np.zeros(size)
    step[layout.steps[i]] = 1
    vectors["step"] = step
    pre_full = np.zeros(size)
    pre_full[layout.pre_slope] = 1
    if i:
        pre_full[layout.pre_slope_deviations[i - 1]] = 1
        own = np.zeros(size)
        own[layout.pre_slope_deviations[i - 1]] = 1
        vectors["pre"] = own
    else:
        vectors["pre"] = pre_full
    knot_index = np.arange(size)[layout.knots]
    deviation_index = np.arange(size)[layout.knot_deviations].reshape(2, -1) if len(fitted.knots) else None
    for j in range(len(fitted.knots) + 1):
        vector = pre_full.copy()
        vector[knot_index[:j]] = 1
        if i and j:
            vector[deviation_index[i - 1, :j]] = 1
        vectors[f"segment {j}"] = vector
    if i:  # until the first knot the slope is the pre-break one: the same quantity, the same check
        vectors["segment 0"] = vectors["pre"]
    return vectors


def posterior_to_prior_sd(fitted: FittedModel, vector: np.ndarray) -> float:
    """Sd of c'theta under the Laplace posterior over its sd under the priors and penalties alone."""
    prior_variance = 1 / ParameterLayout(len(fitted.knots)).prior_precision(
        fitted.penalty, phi_prior(fitted.spec.likelihood)
    )
    return float(np.sqrt(vector @ fitted.cov @ vector) / np.sqrt((vector**2 * prior_variance).sum()))


def estimability(ratio: float | None, lower: float, upper: float, is_ratio_scale: bool) -> str:
    """Why an effect is not estimable from the published figures, or "" when it is."""
    if ratio is not None and ratio > MAX_POSTERIOR_TO_PRIOR_SD:
        return (
            f"the published figures barely narrow what was assumed before seeing them (uncertainty "
            f"{100 * ratio:.0f}% of the assumption's)"
        )
    if is_ratio_scale and lower > 0 and upper / lower > MAX_INTERVAL_FACTOR:
        return f"its 95% interval spans a factor of {upper / lower:.0f}"
    return ""


def effects_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """Rate ratio at the break, growth per period, excess cases; 95% intervals from the draws.
    Each effect also carries the identification check (posterior sd over prior sd, where the
    effect is a combination of parameters) and, when it fails, why it is not estimable."""
    method = (
        f"median and 2.5-97.5% quantiles of {len(draws.coef)} draws from the Laplace "
        "approximation of the penalised likelihood"
    )
    break_index = month_index(draws.months, fitted.spec.break_month)
    n_observed = draws.n_observed
    bounds = (0,) + fitted.knots
    segments = list(zip(bounds, bounds[1:] + (n_observed - break_index,)))
    records = []
    checks: dict[int, tuple[float | None, str]] = {}  # record index -> (sd ratio, reason not estimable)

    def checked(record: tuple, ratio: float | None, is_ratio_scale: bool) -> tuple:
        checks[len(records)] = (ratio, estimability(ratio, record[3], record[4], is_ratio_scale))
        return record

    for a_index, article in enumerate(ARTICLES):
        c = draws.coef[:, a_index, :]
        vectors = effect_loadings(fitted, article)
        record = (article, "level rate ratio at the break", *_interval(np.exp(c[:, 2])), method)
        records.append(checked(record, posterior_to_prior_sd(fitted, vectors["step"]), True))
        label = f"{draws.months[0]} to {draws.months[break_index - 1]}"
        record = (article, f"monthly growth {label} (%)", *_interval(_monthly_growth_pct(c[:, 1])), method)
        records.append(checked(record, posterior_to_prior_sd(fitted, vectors["pre"]), False))
        for j, (first, last) in enumerate(segments):
            slope = c[:, 1] + c[:, 3 : 3 + j].sum(axis=1)
            label = f"{draws.months[break_index + first]} to {draws.months[break_index + last - 1]}"
            record = (article, f"monthly growth {label} (%)", *_interval(_monthly_growth_pct(slope)), method)
            records.append(checked(record, posterior_to_prior_sd(fitted, vectors[f"segment {j}"]), False))
    for a_index, article in enumerate(ARTICLES):
        # Identification check the issue asks to state: two pre-break annual totals can barely tell
        # a steeper pre-trend from a bigger jump; their draws are then strongly correlated.
        correlation = float(np.corrcoef(draws.coef[:, a_index, 1], draws.coef[:, a_index, 2])[0, 1])
        records.append(
            (
                article,
                "correlation of pre-break slope and level step across draws",
                correlation,
                np.nan,
                np.nan,
                "identification check: near -1 or +1 means the pre-break figures cannot "
                "separate the pre-trend from the jump, so neither is estimated on its own",
            )
        )
    if draws.base_rho is not None:
        early = MOBILISATION_BASE_EARLY_MONTHS
        for a_index, article in enumerate(ARTICLES):
            rho, sigma = draws.base_rho[:, a_index], draws.base_sigma[:, a_index]
            records.append(
                (
                    article,
                    "share of cases counted by 'since mobilisation' totals, from 2023-01",
                    *_interval(rho),
                    method,
                )
            )
            records.append(
                (
                    article,
                    f"share of cases counted by 'since mobilisation' totals, {early[0]} to {early[-1]}",
                    *_interval(rho * sigma),
                    method,
                )
            )
    after = slice(break_index, n_observed)
    for article in (*ARTICLES, ALL_ARTICLES):
        rows = article_rows(article)
        excess = (draws.mu[:, rows, after] - draws.counterfactual[:, rows, after]).sum(axis=(1, 2))
        record = (
            article,
            f"excess cases {draws.months[break_index]} to {draws.months[n_observed - 1]} "
            "versus the pre-break trend continued",
            *_interval(excess),
            method,
        )
        records.append(checked(record, None, True))
    table = pd.DataFrame.from_records(
        records, columns=["article", "effect", "estimate", "lower_95", "upper_95", "method"]
    )
    table["posterior_sd_to_prior_sd"] = [checks.get(i, (None, ""))[0] for i in range(len(table))]
    table["not_estimable_because"] = [checks.get(i, (None, ""))[1] for i in range(len(table))]
    table["is_estimable"] = table["not_estimable_because"] == ""
    return table


def fit_to_ledger_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """Every figure considered: used or not (why), value, fitted value with 95% interval, residual.

    The interval is for the complete count of the figure's window (all cases eventually posted) in
    the figure's counting base (a "since mobilisation" total counts only the mobilisation-era base);
    the residual compares the value with the expectation as published (its vintage's completeness).
    """
    obs = fitted.obs
    figures = obs.figures.copy()
    fitted_mean, lower, upper = [], [], []
    for r in figures.itertuples():
        totals, expected = window_draws(draws, r.article, r.period_start, r.period_end, as_counted=True)
        fitted_mean.append(float(expected.mean()))
        lo, hi = np.quantile(totals, [0.025, 0.975])
        lower.append(float(lo))
        upper.append(float(hi))
    figures["fitted_complete"] = np.round(fitted_mean, 1)
    figures["lower_95"] = lower
    figures["upper_95"] = upper
    design = fitted.observed_design()
    expected, month_var, alpha = figure_expectations(fitted.params, obs, design)
    expected, month_var = expected[0], month_var[0]
    var = expected + month_var + alpha[0] * expected**2
    used = figures["is_used"].to_numpy()
    figures["expected_as_published"] = np.nan
    figures["standardised_residual"] = np.nan
    figures.loc[used, "expected_as_published"] = np.round(expected, 1)
    residual = (obs.value - expected) / np.sqrt(var)
    # a bound is a residual only when the fit breaks it: "at least 8,000" is met by 11,000
    # (a positive residual means the value is above the fit: it breaks "at least", never "at most")
    residual = np.where(obs.qualifier == "at_least", np.maximum(residual, 0.0), residual)
    residual = np.where(obs.qualifier == "at_most", np.minimum(residual, 0.0), residual)
    figures.loc[used, "standardised_residual"] = np.round(residual, 2)
    at_least = figures["value_qualifier"] == "at_least"
    at_most = figures["value_qualifier"] == "at_most"
    # "at least v" is consistent with the fit unless the fit's upper bound is below v
    figures["is_inside_95"] = (at_least | (figures["value"] >= figures["lower_95"])) & (
        at_most | (figures["value"] <= figures["upper_95"])
    )
    conflicts: dict[str, list[str]] = {}
    for c in fitted.conflicts.itertuples():
        for fid in [c.whole_figure_id, *c.part_figure_ids.split(",")]:
            conflicts.setdefault(fid, []).append(f"{c.kind}: {c.description}")
    figures["conflicts"] = figures["figure_id"].map(lambda f: " | ".join(conflicts.get(f, [])))
    columns = [
        "figure_id",
        "article",
        "measure",
        "period_start",
        "period_end",
        "value",
        "value_qualifier",
        "source_date",
        "is_used",
        "usage",
        "reason",
        "later_figure_id",
        "expected_as_published",
        "fitted_complete",
        "lower_95",
        "upper_95",
        "is_inside_95",
        "standardised_residual",
        "conflicts",
    ]
    out = figures[columns].copy()
    for column in ("period_start", "period_end", "source_date"):
        out[column] = out[column].dt.date.astype("string")
    return out.reset_index(drop=True)
