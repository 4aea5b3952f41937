"""When did filings break? Profile likelihood over candidate months, cross-checked with ruptures.

The model fixes the break a priori (October 2022, the month after mobilisation was announced);
this asks the data. Each candidate month is refitted with the same penalty and knot offsets; the
95% interval holds the months whose penalised log-likelihood is within 1.92 (chi-square(1)/2) of
the best. ruptures' exact dynamic-programming search (Dynp, linear cost, jump=1) on the
reconstructed monthly log counts of Art. 337 is an independent check; it is not independent of the
model's smoothing, because the reconstruction is drawn from the model given the figures.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import ruptures

from milcourts.inputs.constraints import ConstraintView
from milcourts.model.fit import FittedModel, fit_filings_model
from milcourts.model.simulate import Draws
from milcourts.model.spec import ModelSpec
from milcourts.vocabulary import ARTICLES

CANDIDATES = ("2022-07", "2023-06")  # first and last candidate break months
LR_HALF_CHI2_95 = 1.92


def profile_break_month(
    view: ConstraintView,
    spec: ModelSpec,
    penalty: float,
    first: str = CANDIDATES[0],
    last: str = CANDIDATES[1],
    warm_start: FittedModel | None = None,
) -> pd.DataFrame:
    """Penalised log-likelihood of the model with its break at each candidate month. `warm_start`
    (the fit at the model's own break) starts each refit near its optimum."""
    rows = []
    for month in pd.period_range(first, last, freq="M"):
        fitted = fit_filings_model(
            view, replace(spec, break_month=str(month), penalty_grid=(penalty,)), warm_start=warm_start
        )
        rows.append(
            {
                "break_month": str(month),
                "penalised_loglik": fitted.penalised_loglik,
                "converged": bool(fitted.selection["converged"].all()),
            }
        )
    profile = pd.DataFrame(rows)
    profile["drop_from_best"] = profile["penalised_loglik"].max() - profile["penalised_loglik"]
    profile["is_in_95_interval"] = profile["drop_from_best"] <= LR_HALF_CHI2_95
    return profile


def ruptures_break_month(draws: Draws, article: str = "337", min_size: int = 3) -> str:
    """Single change point in a linear trend of log monthly counts (median reconstruction)."""
    counts = np.median(draws.counts[:, ARTICLES.index(article), : draws.n_observed], axis=0)
    t = np.arange(len(counts), dtype=float)
    signal = np.column_stack([np.log1p(counts), np.ones_like(t), t])
    (start_of_second_segment, _) = (
        ruptures.Dynp(model="linear", jump=1, min_size=min_size).fit(signal).predict(n_bkps=1)
    )
    return str(draws.months[start_of_second_segment])


def break_effect_rows(profile: pd.DataFrame, ruptures_month: str, fitted: FittedModel) -> list[tuple]:
    best = profile.loc[profile["penalised_loglik"].idxmax(), "break_month"]
    inside = profile.loc[profile["is_in_95_interval"], "break_month"]
    months = fitted.obs.months
    index = lambda m: float((pd.Period(m, "M") - months[0]).n)  # noqa: E731
    span = f"{profile['break_month'].iloc[0]} to {profile['break_month'].iloc[-1]}"
    # the 95% set need not be contiguous (the profile is jagged: knots move with the break), so it
    # is listed month by month; lower/upper are its first and last months
    listed = ", ".join(inside)
    return [
        (
            "all_refusal",
            f"break month by profile likelihood: {best} (95% likelihood-ratio set: {listed}; months after {months[0]})",
            index(best),
            index(inside.iloc[0]),
            index(inside.iloc[-1]),
            f"refit at every candidate month {span} with the same penalty; interval from the likelihood ratio "
            "(chi-square, 1 df)",
        ),
        (
            "337",
            f"break month by ruptures Dynp: {ruptures_month} (months after {months[0]})",
            index(ruptures_month),
            np.nan,
            np.nan,
            "ruptures Dynp, linear cost, jump=1, one change point, on the median reconstructed log counts",
        ),
        (
            "all_refusal",
            f"break month used by the model: {fitted.spec.break_month} (months after {months[0]})",
            index(fitted.spec.break_month),
            np.nan,
            np.nan,
            "fixed a priori: the month after mobilisation was announced",
        ),
    ]
