"""Draws from the fitted model: parameters, monthly expectations, and monthly counts given the figures.

Parameter draws come from the Laplace approximation; counts of modelled months are drawn
conditioned on the published figures (reconstruct), forecast months from the month-level
negative binomial. Windows and published-looking figures are read off the draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from milcourts.inputs.constraints import month_weights
from milcourts.inputs.exposure import month_exposure
from milcourts.model.fit import FittedModel
from milcourts.model.likelihood import (
    base_share_by_month,
    base_shares,
    figure_loadings,
    monthly_means,
    point_covariance,
    unpack,
)
from milcourts.model.observations import design_matrix, month_index
from milcourts.model.spec import (
    APPROX_RELATIVE_SD,
    MOBILISATION_BASE_EARLY_MONTHS,
    MOBILISATION_BASE_START,
    check_month_range,
)
from milcourts.vocabulary import ALL_ARTICLES, ARTICLES


@dataclass
class Draws:
    """Parameter draws and the monthly expectations and counts they imply (with forecast)."""

    months: pd.PeriodIndex
    mu: np.ndarray  # draws x articles x months, expected cases
    counts: np.ndarray  # draws x articles x months, simulated counts (parameter + count noise)
    counterfactual: np.ndarray  # draws x articles x months, expected cases with no break terms
    coef: np.ndarray  # draws x articles x (3 + knots)
    n_observed: int
    alpha: np.ndarray = None  # draws: figure-level relative variance (release discrepancies)
    tau: np.ndarray = None  # draws: reporting-lag time constant, days
    is_conditioned: bool = False  # observed months drawn given the published figures
    base_rho: np.ndarray = None  # draws x articles: share counted by "since mobilisation" totals
    base_sigma: np.ndarray = None  # draws x articles: further share for Sep-Dec 2022

    def base_share(self) -> np.ndarray:
        """(draws, articles, months) share of cases a "since mobilisation" total counts."""
        early = np.asarray(self.months.isin(MOBILISATION_BASE_EARLY_MONTHS))
        return base_share_by_month(self.base_rho, self.base_sigma, early)


def all_months(fitted: FittedModel) -> pd.PeriodIndex:
    months = fitted.obs.months
    check_month_range(fitted.obs.figures, months, fitted.spec.forecast_months)
    return pd.period_range(months[0], periods=len(months) + fitted.spec.forecast_months, freq="M")


def _full_design(fitted: FittedModel, months: pd.PeriodIndex) -> np.ndarray:
    return design_matrix(
        len(months),
        month_index(months, fitted.spec.break_month),
        fitted.knots,
        n_observed=len(fitted.obs.months),
        damping=fitted.spec.forecast_damping,
        method=fitted.spec.forecast_method,
        pinned_end=fitted.obs.pinned_end,
    )


def simulate(
    fitted: FittedModel,
    n_draws: int | None = None,
    seed: int | None = None,
    condition: bool = True,
    params: np.ndarray | None = None,
) -> Draws:
    """Draws from the Laplace approximation of the penalised likelihood, then month counts:
    for modelled months conditioned on the published figures (reconstruct), for forecast months
    negative binomial with the fitted month-level dispersion. Prediction, not just mean, uncertainty.

    `params` (draws x parameters) replaces the Laplace draws with draws from elsewhere (the
    full-posterior check's sampler), so both go through the same tables."""
    spec = fitted.spec
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    months = all_months(fitted)
    days = month_exposure(months, spec.exposure)
    design = _full_design(fitted, months)
    if params is None:
        params = rng.multivariate_normal(fitted.params, fitted.cov, size=n_draws or spec.n_draws, method="eigh")
    coef, phi, alpha, tau = unpack(params, len(fitted.knots))
    mu = monthly_means(coef, design, days)
    flat = coef.copy()
    flat[:, :, 2:] = 0.0  # no step, no slope changes: the pre-break trend continued
    counterfactual = monthly_means(flat, design, days)
    size = (1.0 / phi)[:, None, None]
    counts = rng.negative_binomial(size, size / (size + mu)).astype(float)
    n_observed = len(fitted.obs.months)
    if condition:
        counts[:, :, :n_observed] = reconstruct(fitted, params, rng)
    rho, sigma = base_shares(params)
    return Draws(
        months=months,
        mu=mu,
        counts=counts,
        counterfactual=counterfactual,
        coef=coef,
        n_observed=n_observed,
        alpha=alpha,
        tau=tau,
        is_conditioned=condition,
        base_rho=rho,
        base_sigma=sigma,
    )


RECONSTRUCTION_CHUNK = 200  # draws conditioned at once (memory: chunk x 144^2 doubles)


def reconstruct(fitted: FittedModel, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Monthly counts per article given the published figures, one draw per parameter draw.

    Counts Y (article-months) and point figures y = L Y + e are jointly normal under the model
    (Y ~ mean mu, variance D = mu + phi mu^2; e the thinning, release discrepancy and rounding of
    each figure), so Y | y is normal with mean mu + D L' S^-1 (y - L mu) and covariance
    D - D L' S^-1 L D, where S = Cov(y): the generalised Chow-Lin / Litterman disaggregation, drawn
    per parameter draw so parameter uncertainty carries through. Drawn by Matheron's update: an
    unconditional draw (Y*, y* = L Y* + e*) moved by D L' S^-1 (y - y*) has exactly that
    distribution, and needs no square root of the months' covariance (an eigendecomposition of a
    144 x 144 matrix per draw took most of the validation's time). Months inside a published window
    then cannot stray from what the window allows beyond the figure's own error. Rounded to
    integers, floored at 0.
    """
    obs = fitted.obs
    design = fitted.observed_design()
    point = (obs.later_partner < 0) & np.isin(obs.qualifier, ("exact", "approx"))
    y = np.round(obs.value[point])
    approx_mask = (obs.qualifier[point] == "approx").astype(float)[None]
    n_articles, n_months = len(ARTICLES), len(obs.months)
    out = np.empty((len(params), n_articles, n_months))
    for first in range(0, len(params), RECONSTRUCTION_CHUNK):
        chunk = params[first : first + RECONSTRUCTION_CHUNK]
        loadings, mu, phi, alpha = figure_loadings(chunk, obs, design)
        loadings = loadings[:, point]
        expected = np.maximum((loadings * mu[:, None]).sum(axis=(2, 3)), 1e-9)
        cov_y = point_covariance(loadings, mu, phi, alpha, expected, approx_mask)
        flat = loadings.reshape(len(chunk), point.sum(), -1)  # B x J x C
        variance = (mu + phi[:, None, None] * mu**2).reshape(len(chunk), -1)  # B x C
        mean = mu.reshape(len(chunk), -1)
        # the figures' own noise e: Cov(y) less the part the months explain, L D L'
        # batched matrix products, not einsum: einsum's own loops took a third of the draws' time
        explained = (flat * variance[:, None, :]) @ np.swapaxes(flat, 1, 2)
        own_sd = np.sqrt(np.clip(np.diagonal(cov_y - explained, axis1=1, axis2=2), 0, None))
        unconditional = mean + np.sqrt(variance) * rng.standard_normal(mean.shape)
        published = (flat @ unconditional[..., None])[..., 0] + own_sd * rng.standard_normal(own_sd.shape)
        gap = np.linalg.solve(cov_y, (y[None] - published)[..., None])[..., 0]  # S^-1 (y - y*)
        conditioned = unconditional + variance * (gap[:, None, :] @ flat)[:, 0, :]
        out[first : first + len(chunk)] = np.clip(np.round(conditioned), 0, None).reshape(
            len(chunk), n_articles, n_months
        )
    return out


def window_weights(months: pd.PeriodIndex, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    shares = month_weights(start, end)
    outside = [m for m in shares if m not in months]
    if outside:
        raise ValueError(
            f"window {start.date()} to {end.date()} reaches {outside[0]}, outside the modelled "
            f"months {months[0]} to {months[-1]}"
        )
    return np.array([shares.get(m, 0.0) for m in months])


def article_rows(article: str) -> list[int]:
    if article == ALL_ARTICLES:
        return [0, 1, 2]
    if article not in ARTICLES:
        raise ValueError(f"article must be one of {', '.join(ARTICLES + (ALL_ARTICLES,))}, got {article!r}")
    return [ARTICLES.index(article)]


def _counted(draws: Draws, rows: list[int], start: pd.Timestamp, values: np.ndarray) -> np.ndarray:
    """Sum over the article rows, with the mobilisation counting base for a total that starts
    on 21 Sep 2022 (values: draws x articles x months)."""
    if start == MOBILISATION_BASE_START and draws.base_rho is not None:
        values = values * draws.base_share()
    return values[:, rows, :].sum(axis=1)


def window_draws(draws: Draws, article: str, start, end, as_counted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Simulated totals and expected totals of a window (partial months by their share of days).

    `as_counted`: what a published figure of that window counts, i.e. with the mobilisation
    counting base for a "since mobilisation" total; otherwise every case received (the estimand).
    """
    start = pd.Timestamp(start)
    weights = window_weights(draws.months, start, pd.Timestamp(end))
    rows = article_rows(article)
    base_start = start if as_counted else None
    counts = _counted(draws, rows, base_start, draws.counts)
    totals = (counts * weights).sum(axis=1)
    # the expectation given the published figures: conditioned counts where the data are, the model
    # mean for forecast months (the same numbers as the `expected` column of the monthly table)
    observed = np.arange(len(draws.months)) < draws.n_observed
    means = np.where(observed, counts.mean(axis=0), _counted(draws, rows, base_start, draws.mu))
    expected = (means * weights).sum(axis=1)
    return totals, expected


def published_figure_draws(
    draws: Draws, article: str, start, end, source_date, qualifier: str, rng: np.random.Generator
) -> np.ndarray:
    """Predictive draws of a figure as it would be published: the window's simulated counts,
    thinned by the completeness of its vintage and its counting base, times the figure-level
    release discrepancy (and the rounding error of an approximate figure)."""
    start, end, published = pd.Timestamp(start), pd.Timestamp(end), pd.Timestamp(source_date)
    weights = window_weights(draws.months, start, end)
    first = np.array([max(m.start_time, start) for m in draws.months], dtype="datetime64[D]")
    last = np.array([min(m.end_time.normalize(), end) for m in draws.months], dtype="datetime64[D]")
    covered = np.clip((last - first).astype(int) + 1, 0, None).astype(float)
    lag = np.clip((np.datetime64(published.date(), "D") - last).astype(int), 0, None).astype(float)
    tau = draws.tau[:, None]
    q = np.exp(-1.0 / tau)
    n = np.maximum(covered, 1)
    complete = np.where(covered > 0, 1 - np.exp(-lag / tau) * (1 - q**n) / (1 - q) / n, 0.0)
    rows = article_rows(article)
    totals = (_counted(draws, rows, start, draws.counts) * weights * complete).sum(axis=1)
    spread = np.sqrt(np.log1p(draws.alpha + (APPROX_RELATIVE_SD**2 if qualifier == "approx" else 0.0)))
    return totals * np.exp(rng.normal(-(spread**2) / 2, spread))


def predict_total(draws: Draws, article: str, start: str, end: str) -> dict:
    """Total cases received in [start, end], with 80% and 95% prediction intervals."""
    totals, expected = window_draws(draws, article, start, end)
    q = np.quantile(totals, [0.025, 0.1, 0.9, 0.975])
    return {
        "estimate": round(float(np.mean(expected)), 1),
        "lower_95": float(q[0]),
        "upper_95": float(q[3]),
        "lower_80": float(q[1]),
        "upper_80": float(q[2]),
    }
