"""The penalised log-likelihood of the published figures, batched over parameter vectors.

Likelihood of a figure with expectation E (the window's months, times reporting completeness):
a negative binomial matched to the variance E + phi*sum_t(w_t mu_t)^2 + alpha*E^2. phi is the
month-to-month variation of real counts (used for monthly prediction intervals); alpha is the
figure-level discrepancy between releases (counting bases, transcription), which must not widen
monthly intervals (methods.md section 7, point 6). "approx" figures add APPROX_RELATIVE_SD;
"at_least"/"at_most" are censored. A negative binomial rather than a quasi-Poisson scale: a single
scale estimated from totals in the thousands would inflate the intervals of small months.
Point figures are fitted jointly: overlapping windows share the same months' counts.

Reporting lag: a case received on day d appears in a release published on day s with probability
1 - exp(-(s - d)/tau). Each figure's expectation carries the completeness of its own vintage; an
earlier vintage of a period enters as Binomial(later value, E_early / E_late), conditioned on the
later one, so revised pairs inform tau without counting any case twice.

Every function takes parameters as (B, P) (a single vector is promoted), so that derivatives by
finite differences and draws are one vectorised pass.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from milcourts.model.observations import Observations
from milcourts.model.spec import APPROX_RELATIVE_SD, PRIOR_LOG_PHI, ParameterLayout


def base_shares(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched: params (B, P) -> rho (B, 3) and sigma (B, 3) of the mobilisation counting base."""
    params = np.atleast_2d(params)
    layout = ParameterLayout((params.shape[1] - 18) // 3)
    return special.expit(params[:, layout.base_shares]), special.expit(params[:, layout.early_shares])


def base_share_by_month(rho: np.ndarray, sigma: np.ndarray, is_early: np.ndarray) -> np.ndarray:
    """(B, 3, months): share of each article-month's cases a "since mobilisation" total counts."""
    return rho[:, :, None] * np.where(is_early[None, None, :], sigma[:, :, None], 1.0)


def unpack(params: np.ndarray, n_knots: int):
    """Batched: params (B, P) -> coefficients (B, 3, 3+K) and phi, alpha, tau (B,)."""
    params = np.atleast_2d(params)
    layout = ParameterLayout(n_knots)
    base = params[:, layout.trend].reshape(-1, 3, 3)
    coef = np.zeros((params.shape[0], 3, 3 + n_knots))
    coef[:, :, :3] = base
    coef[:, 1:, 1] += base[:, :1, 1]  # small series' pre-slope = 337's + shrunk deviation
    if n_knots:  # an early training origin may support no knot at all
        coef[:, :, 3:] = params[:, None, layout.knots]
        coef[:, 1:, 3:] += params[:, layout.knot_deviations].reshape(-1, 2, n_knots)
    return (
        coef,
        np.exp(params[:, layout.log_phi]),
        np.exp(params[:, layout.log_alpha]),
        np.exp(params[:, layout.log_tau]),
    )


def monthly_means(coef: np.ndarray, design: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Expected cases, (B, articles, months)."""
    return np.exp(coef @ design.T) * days


def completeness(obs: Observations, tau: np.ndarray) -> np.ndarray:
    """(B, figures, months): average over covered days of 1 - exp(-lag/tau), closed form.

    Only cells published within COMPLETE_AFTER_DAYS are computed; older ones are complete (the
    fitted lag is days to weeks, and exp(-365/tau) is below 1e-6 for any tau under 26 days).
    """
    tau = np.asarray(tau, dtype=float)
    out = np.broadcast_to((obs.covered_days > 0).astype(float), (len(tau), *obs.covered_days.shape)).copy()
    rows, cols = obs.recent_cells
    if len(rows):
        n = obs.covered_days[rows, cols]
        t = tau[:, None]
        q = np.exp(-1.0 / t)
        out[:, rows, cols] = 1 - np.exp(-obs.lag_first[rows, cols] / t) * (1 - q**n) / (1 - q) / n
    return out


def _nb_size(mean, var):
    return mean**2 / np.maximum(var - mean, 1e-9 * mean)


def _binom_logpmf(k, n, p):
    return (
        special.gammaln(n + 1)
        - special.gammaln(k + 1)
        - special.gammaln(n - k + 1)
        + k * np.log(p)
        + (n - k) * np.log1p(-p)
    )


def figure_loadings(params, obs, design):
    """Share of each article-month's cases that each figure counts: (B, figures, articles, months)."""
    n_knots = design.shape[1] - 3
    coef, phi, alpha, tau = unpack(params, n_knots)
    mu = monthly_means(coef, design[: len(obs.months)], obs.days)  # B x articles x months
    seen = obs.weights[None] * completeness(obs, tau)  # B x figures x months
    loadings = obs.article_mask[None, :, :, None] * seen[:, :, None, :]
    based = np.nonzero(obs.is_mobilisation_base)[0]
    if len(based):
        rho, sigma = base_shares(params)
        loadings[:, based] *= base_share_by_month(rho, sigma, obs.is_early_base_month)[:, None]
    return loadings, mu, phi, alpha


def figure_expectations(params, obs, design):
    """Each figure's expectation as published (with its vintage's completeness) and its variance parts."""
    loadings, mu, phi, alpha = figure_loadings(params, obs, design)
    per_cell = loadings * mu[:, None]
    expected = np.maximum(per_cell.sum(axis=(2, 3)), 1e-9)
    month_var = phi[:, None] * (per_cell**2).sum(axis=(2, 3))
    return expected, month_var, alpha


def point_covariance(loadings, mu, phi, alpha, expected, approx_mask):
    """Joint covariance of point figures: overlapping windows share the same months' counts.

    Cov(y_j, y_k) = sum over article-months of L_j L_k (mu + phi mu^2), plus the Poisson part of
    thinning on the diagonal (a figure that sees a share L of a month counts L mu on average), plus
    each figure's own release discrepancy alpha E^2 and rounding error of approximate figures.
    """
    month_variance = (mu + phi[:, None, None] * mu**2).reshape(len(mu), 1, -1)  # B x 1 x (A*T)
    flat = loadings.reshape(loadings.shape[0], loadings.shape[1], -1)  # B x J x (A*T)
    cov = (flat * month_variance) @ flat.transpose(0, 2, 1)  # batched GEMM
    thinning = ((flat - flat**2) * mu.reshape(len(mu), 1, -1)).sum(axis=2)
    own = alpha[:, None] * expected**2 + approx_mask * (APPROX_RELATIVE_SD * expected) ** 2
    index = np.arange(cov.shape[1])
    cov[:, index, index] += thinning + own
    return cov


def _mvn_logpdf(residual, cov):
    chol = np.linalg.cholesky(cov)
    solved = np.linalg.solve(chol, residual[..., None])[..., 0]
    logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return -0.5 * ((solved**2).sum(axis=1) + logdet + residual.shape[1] * np.log(2 * np.pi))


def total_loglik(params, obs, design) -> np.ndarray:
    """(B,) log-likelihood: joint normal for point figures (their windows overlap), negative
    binomial tails for bounds, binomial for earlier vintages given the later one."""
    params = np.atleast_2d(params)
    loadings, mu, phi, alpha = figure_loadings(params, obs, design)
    per_cell = loadings * mu[:, None]
    expected = np.maximum(per_cell.sum(axis=(2, 3)), 1e-9)
    y = np.round(obs.value)[None]
    revision = obs.later_partner >= 0
    total = np.zeros(len(params))
    point = ~revision & np.isin(obs.qualifier, ("exact", "approx"))
    if point.any():
        approx_mask = (obs.qualifier[point] == "approx").astype(float)[None]
        cov = point_covariance(loadings[:, point], mu, phi, alpha, expected[:, point], approx_mask)
        try:
            total += _mvn_logpdf(y[:, point] - expected[:, point], cov)
        except np.linalg.LinAlgError:
            return np.full(len(params), -np.inf)
    bounds = ~revision & np.isin(obs.qualifier, ("at_least", "at_most"))
    if bounds.any():
        month_var = phi[:, None] * (per_cell[:, bounds] ** 2).sum(axis=(2, 3))
        e = expected[:, bounds]
        var = e + month_var + alpha[:, None] * e**2
        size = _nb_size(e, var)
        prob = size / (size + e)
        yb = y[:, bounds]
        lower = obs.qualifier[bounds] == "at_least"
        tail = np.where(
            lower,
            special.betainc(np.maximum(yb, 1e-9), size, 1 - prob),  # P(Y >= y)
            special.betainc(size, yb + 1, prob),
        )  # P(Y <= y)
        total += np.log(np.maximum(tail, 1e-300)).sum(axis=1)
    if revision.any():
        later = obs.later_partner[revision]
        share = np.clip(expected[:, revision] / expected[:, later], 1e-9, 1 - 1e-9)
        total += _binom_logpmf(y[:, revision], np.round(obs.value)[later][None], share).sum(axis=1)
    return total


def penalty_terms(params, n_knots: int, penalty: float, log_phi_prior=PRIOR_LOG_PHI) -> np.ndarray:
    """(B,) the penalties and priors: every one is quadratic, 0.5 * precision * (x - mean)^2."""
    params = np.atleast_2d(params)
    layout = ParameterLayout(n_knots)
    precision = layout.prior_precision(penalty, log_phi_prior)
    return 0.5 * ((params - layout.prior_mean(log_phi_prior)) ** 2 * precision).sum(axis=1)


def penalty_hessian(n_knots: int, penalty: float, log_phi_prior=PRIOR_LOG_PHI) -> np.ndarray:
    """Every penalty is quadratic, so its Hessian is this constant diagonal (no numerics needed)."""
    return np.diag(ParameterLayout(n_knots).prior_precision(penalty, log_phi_prior))
