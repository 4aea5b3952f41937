"""The fit as tables: monthly estimates with prediction intervals, effects, and the fit to each figure.

These are the model's data products (written to data/processed and published with the reports);
column names carry their units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from milcourts.model.fit import FittedModel
from milcourts.model.likelihood import figure_expectations
from milcourts.model.observations import MONTHS_PER_YEAR, design_matrix, month_index
from milcourts.model.simulate import Draws, article_rows, window_draws
from milcourts.model.spec import MOBILISATION_BASE_EARLY_MONTHS
from milcourts.vocabulary import ALL_ARTICLES, ARTICLES


def monthly_filings_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """data/processed/monthly_filings.csv: prediction intervals for each month's count."""
    figures = fitted.obs.figures
    single = figures[figures["period_start"].dt.to_period("M") == figures["period_end"].dt.to_period("M")]
    published = {(r.article, r.period_start.to_period("M")) for r in single.itertuples()}
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


def effects_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """Rate ratio at the break, growth per period, excess cases; 95% intervals from the draws."""
    method = (
        f"median and 2.5-97.5% quantiles of {len(draws.coef)} draws from the Laplace "
        "approximation of the penalised likelihood"
    )
    break_index = month_index(draws.months, fitted.spec.break_month)
    n_observed = draws.n_observed
    bounds = (0,) + fitted.knots
    segments = list(zip(bounds, bounds[1:] + (n_observed - break_index,)))
    records = []
    for a_index, article in enumerate(ARTICLES):
        c = draws.coef[:, a_index, :]
        records.append((article, "level rate ratio at the break", *_interval(np.exp(c[:, 2])), method))
        label = f"{draws.months[0]} to {draws.months[break_index - 1]}"
        records.append((article, f"monthly growth {label} (%)", *_interval(_monthly_growth_pct(c[:, 1])), method))
        for j, (first, last) in enumerate(segments):
            slope = c[:, 1] + c[:, 3 : 3 + j].sum(axis=1)
            label = f"{draws.months[break_index + first]} to {draws.months[break_index + last - 1]}"
            records.append((article, f"monthly growth {label} (%)", *_interval(_monthly_growth_pct(slope)), method))
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
        records.append(
            (
                article,
                f"excess cases {draws.months[break_index]} to {draws.months[n_observed - 1]} "
                "versus the pre-break trend continued",
                *_interval(excess),
                method,
            )
        )
    return pd.DataFrame.from_records(
        records, columns=["article", "effect", "estimate", "lower_95", "upper_95", "method"]
    )


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
    design = design_matrix(len(obs.months), month_index(obs.months, fitted.spec.break_month), fitted.knots)
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
