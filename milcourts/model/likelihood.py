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

Every function takes parameters as (B, P) (a single vector is promoted) and is written once for
two array backends: numpy (draws: thousands of parameter vectors in one vectorised pass) and JAX
(model.derivatives: exact gradients and Hessians for the fit). Hence no in-place assignment: masks
and `where` instead, which both backends trace the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from milcourts.model.spec import APPROX_RELATIVE_SD, COMPLETE_AFTER_DAYS, PRIOR_LOG_PHI, ParameterLayout


class Backend(NamedTuple):
    """The array namespace and the special functions the likelihood needs."""

    xp: Any
    gammaln: Callable
    expit: Callable
    betainc: Callable
    inverse_and_logdet: Callable  # of symmetric positive definite matrices, batched over the leading axis


def _inverse_and_logdet(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """By Cholesky; raises LinAlgError unless every matrix is positive definite."""
    chol = np.linalg.cholesky(matrix)
    lower_inverse = np.linalg.solve(chol, np.broadcast_to(np.eye(matrix.shape[-1]), matrix.shape))
    logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return np.swapaxes(lower_inverse, -1, -2) @ lower_inverse, logdet


NUMPY = Backend(np, special.gammaln, special.expit, special.betainc, _inverse_and_logdet)


class FigureRoles(NamedTuple):
    """How each figure enters the likelihood, as arrays (J = figures, T = months).

    Masks rather than index lists: JAX compiles the likelihood once per array shape, so every data
    set of the same size (simulated replicates, leave-one-out refits, rolling origins padded to
    the same size) reuses one compilation, whatever its figures' kinds.

    Two blocks, told by the masks' lengths: the point masks cover the first P figures and the
    bound and revision masks the last R. Here (numpy) both cover all J figures; the compiled
    likelihood (model.derivatives) sorts the points first, so that the joint normal's covariance,
    whose cost grows with the square and cube of its size, and the incomplete beta function of the
    bounds each see only their own figures.
    """

    is_point: np.ndarray  # (P,) exact or approximate values, joint normal
    is_approx: np.ndarray  # (P,) rounded ("about"), as 0/1
    is_bound: np.ndarray  # (R,) "at least" / "at most"
    is_lower: np.ndarray  # (R,) "at least"
    is_revision: np.ndarray  # (R,) earlier vintage, conditioned on its later one
    partner: np.ndarray  # (R,) int, among all J figures: the later vintage of a revision (itself otherwise)
    is_based: np.ndarray  # (J,) "since mobilisation" totals (counting base shares)
    is_early_month: np.ndarray  # (T,) Sep-Dec 2022, the early counting base


def figure_roles(obs) -> FigureRoles:
    revision = obs.later_partner >= 0
    own = np.arange(len(obs.later_partner))
    return FigureRoles(
        is_point=~revision & np.isin(obs.qualifier, ("exact", "approx")),
        is_approx=(obs.qualifier == "approx").astype(float),
        is_bound=~revision & np.isin(obs.qualifier, ("at_least", "at_most")),
        is_lower=obs.qualifier == "at_least",
        is_revision=revision,
        partner=np.where(revision, obs.later_partner, own),
        is_based=np.asarray(obs.is_mobilisation_base, bool),
        is_early_month=np.asarray(obs.is_early_base_month, bool),
    )


def base_shares(params, backend: Backend = NUMPY):
    """Batched: params (B, P) -> rho (B, 3) and sigma (B, 3) of the mobilisation counting base."""
    params = backend.xp.atleast_2d(params)
    layout = ParameterLayout((params.shape[1] - 18) // 3)
    return backend.expit(params[:, layout.base_shares]), backend.expit(params[:, layout.early_shares])


def base_share_by_month(rho, sigma, is_early, xp=np):
    """(B, 3, months): share of each article-month's cases a "since mobilisation" total counts."""
    return rho[:, :, None] * xp.where(xp.asarray(is_early)[None, None, :], sigma[:, :, None], 1.0)


# Art. 338's and 332's pre-break slopes are 337's plus a shrunk deviation: coefficient (article,
# term) gets this multiple of 337's pre-slope parameter added.
_SHARED_PRE_SLOPE = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def unpack(params, n_knots: int, xp=np):
    """Batched: params (B, P) -> coefficients (B, 3, 3+K) and phi, alpha, tau (B,)."""
    params = xp.atleast_2d(params)
    layout = ParameterLayout(n_knots)
    base = params[:, layout.trend].reshape(-1, 3, 3) + params[:, layout.pre_slope, None, None] * _SHARED_PRE_SLOPE
    knots = params[:, None, layout.knots] + xp.concatenate(
        [xp.zeros((params.shape[0], 1, n_knots)), params[:, layout.knot_deviations].reshape(-1, 2, n_knots)], axis=1
    )
    return (
        xp.concatenate([base, knots], axis=2),
        xp.exp(params[:, layout.log_phi]),
        xp.exp(params[:, layout.log_alpha]),
        xp.exp(params[:, layout.log_tau]),
    )


def monthly_means(coef, design, days, xp=np):
    """Expected cases, (B, articles, months)."""
    return xp.exp(coef @ design.T) * days


def completeness(obs, tau, xp=np):
    """(B, figures, months): average over covered days of 1 - exp(-lag/tau), closed form.

    Cells published COMPLETE_AFTER_DAYS or more after their last day are complete (the fitted lag
    is days to weeks, and exp(-365/tau) is below 1e-6 for any tau under 26 days).
    """
    covered, lag = obs.covered_days, obs.lag_first
    if xp is np and len(getattr(obs, "recent_cells", ())) == 2:
        # numpy (draws): the same expression on the recent cells alone, a few percent of them
        # (every cell took a quarter of the draws' time)
        out = np.repeat(((covered > 0) * 1.0)[None], np.size(tau), axis=0)
        j, m = obs.recent_cells
        tt = np.asarray(tau, float).reshape(-1, 1)
        n, q = covered[j, m], np.exp(-1.0 / tt)
        out[:, j, m] = 1 - np.exp(-lag[j, m] / tt) * (1 - q**n) / (1 - q) / n
        return out
    t = xp.asarray(tau)[:, None, None]
    n = xp.where(covered > 0, covered, 1.0)
    q = xp.exp(-1.0 / t)
    partial = 1 - xp.exp(-lag / t) * (1 - q**n) / (1 - q) / n
    recent = (covered > 0) & (lag < COMPLETE_AFTER_DAYS)
    return xp.where(recent, partial, (covered > 0) * 1.0)


def _nb_size(mean, var, xp=np):
    return mean**2 / xp.maximum(var - mean, 1e-9 * mean)


def figure_loadings(params, obs, design, backend: Backend = NUMPY, roles: FigureRoles | None = None):
    """Share of each article-month's cases that each figure counts: (B, figures, articles, months)."""
    xp = backend.xp
    roles = figure_roles(obs) if roles is None else roles
    n_knots = design.shape[1] - 3
    coef, phi, alpha, tau = unpack(params, n_knots, xp)
    n_months = obs.weights.shape[1]
    mu = monthly_means(coef, design[:n_months], obs.days, xp)  # B x articles x months
    seen = obs.weights[None] * completeness(obs, tau, xp)  # B x figures x months
    loadings = obs.article_mask[None, :, :, None] * seen[:, :, None, :]
    rho, sigma = base_shares(params, backend)
    share = base_share_by_month(rho, sigma, roles.is_early_month, xp)  # B x articles x months
    loadings = loadings * xp.where(roles.is_based[None, :, None, None], share[:, None], 1.0)
    return loadings, mu, phi, alpha


def figure_expectations(params, obs, design, backend: Backend = NUMPY):
    """Each figure's expectation as published (with its vintage's completeness) and its variance parts."""
    xp = backend.xp
    loadings, mu, phi, alpha = figure_loadings(params, obs, design, backend)
    per_cell = loadings * mu[:, None]
    expected = xp.maximum(per_cell.sum(axis=(2, 3)), 1e-9)
    month_var = phi[:, None] * (per_cell**2).sum(axis=(2, 3))
    return expected, month_var, alpha


def point_covariance(loadings, mu, phi, alpha, expected, approx_mask, xp=np):
    """Joint covariance of point figures: overlapping windows share the same months' counts.

    Cov(y_j, y_k) = sum over article-months of L_j L_k (mu + phi mu^2), plus the Poisson part of
    thinning on the diagonal (a figure that sees a share L of a month counts L mu on average), plus
    each figure's own release discrepancy alpha E^2 and rounding error of approximate figures.
    """
    month_variance = (mu + phi[:, None, None] * mu**2).reshape(mu.shape[0], 1, -1)  # B x 1 x (A*T)
    flat = loadings.reshape(loadings.shape[0], loadings.shape[1], -1)  # B x J x (A*T)
    cov = (flat * month_variance) @ xp.swapaxes(flat, 1, 2)  # batched GEMM
    thinning = ((flat - flat**2) * mu.reshape(mu.shape[0], 1, -1)).sum(axis=2)
    own = alpha[:, None] * expected**2 + approx_mask * (APPROX_RELATIVE_SD * expected) ** 2
    return cov + (thinning + own)[:, :, None] * xp.eye(cov.shape[1])


def _mvn_logpdf(residual, cov, backend: Backend):
    """Without the 2 pi constant. Through the inverse rather than triangular solves: its derivative
    is two matrix products (-S^-1 dS S^-1), which JAX differentiates twice cheaply."""
    inverse, logdet = backend.inverse_and_logdet(cov)
    quadratic = (residual[:, :, None] * inverse * residual[:, None, :]).sum(axis=(1, 2))
    return -0.5 * (quadratic + logdet)


def total_loglik(params, obs, design, backend: Backend = NUMPY, roles: FigureRoles | None = None):
    """(B,) log-likelihood: joint normal for point figures (their windows overlap), negative
    binomial tails for bounds, binomial for earlier vintages given the later one. -inf (numpy) or
    nan (JAX) where the point figures' covariance is not positive definite.

    Every term is computed for every figure and masked by its role, with harmless stand-in values
    where a term does not apply (a nan there would still poison a derivative through `where`).
    """
    xp = backend.xp
    params = xp.atleast_2d(params)
    roles = figure_roles(obs) if roles is None else roles
    loadings, mu, phi, alpha = figure_loadings(params, obs, design, backend, roles)
    per_cell = loadings * mu[:, None]
    expected = xp.maximum(per_cell.sum(axis=(2, 3)), 1e-9)
    y = xp.round(obs.value)[None]
    # point figures (the first P): joint normal; other figures' rows and columns become the
    # identity, residual 0
    n_point = roles.is_point.shape[0]
    point = roles.is_point
    both = point[:, None] & point[None, :]
    cov = point_covariance(loadings[:, :n_point], mu, phi, alpha, expected[:, :n_point], roles.is_approx[None], xp)
    cov = xp.where(both[None], cov, xp.eye(n_point)[None])
    try:
        total = _mvn_logpdf(xp.where(point[None], y[:, :n_point] - expected[:, :n_point], 0.0), cov, backend)
    except np.linalg.LinAlgError:
        return np.full(params.shape[0], -np.inf)
    total = total - 0.5 * point.sum() * np.log(2 * np.pi)
    # bounds and revisions (the last R figures)
    others = slice(expected.shape[1] - roles.is_bound.shape[0], None)
    e_other, y_other = expected[:, others], y[:, others]
    # bounds: negative binomial tails
    bound = roles.is_bound[None]
    month_var = phi[:, None] * (per_cell[:, others] ** 2).sum(axis=(2, 3))
    e = xp.where(bound, e_other, 1.0)
    var = e + xp.where(bound, month_var + alpha[:, None] * e**2, 1.0)
    size = _nb_size(e, var, xp)
    prob = size / (size + e)
    yb = xp.where(bound, y_other, 1.0)
    # P(Y >= y) = I_{1-p}(y, size) for "at least", P(Y <= y) = I_p(size, y + 1) for "at most":
    # one call with the arguments chosen per figure (each call is an evaluation of a continued
    # fraction, and its derivatives several)
    lower = roles.is_lower[None]
    tail = backend.betainc(
        xp.where(lower, xp.maximum(yb, 1e-9), size),
        xp.where(lower, size, yb + 1),
        xp.where(lower, 1 - prob, prob),
    )
    total = total + xp.where(bound, xp.log(xp.maximum(tail, 1e-300)), 0.0).sum(axis=1)
    # earlier vintages: binomial thinning of the later value
    revision = roles.is_revision[None]
    share = xp.clip(e_other / expected[:, roles.partner], 1e-9, 1 - 1e-9)
    k, n = y_other, y[:, roles.partner]
    k = xp.where(revision, k, 0.0)
    n = xp.where(revision, n, 0.0)
    log_choose = backend.gammaln(n + 1) - backend.gammaln(k + 1) - backend.gammaln(n - k + 1)
    binomial = log_choose + k * xp.log(share) + (n - k) * xp.log1p(-share)
    return total + xp.where(revision, binomial, 0.0).sum(axis=1)


def penalty_terms(params, n_knots: int, penalty: float, log_phi_prior=PRIOR_LOG_PHI, xp=np):
    """(B,) the penalties and priors: every one is quadratic, 0.5 * precision * (x - mean)^2."""
    params = xp.atleast_2d(params)
    layout = ParameterLayout(n_knots)
    precision = layout.prior_precision(penalty, log_phi_prior)
    return 0.5 * ((params - layout.prior_mean(log_phi_prior)) ** 2 * precision).sum(axis=1)


def penalty_hessian(n_knots: int, penalty: float, log_phi_prior=PRIOR_LOG_PHI) -> np.ndarray:
    """Every penalty is quadratic, so its Hessian is this constant diagonal (no numerics needed)."""
    return np.diag(ParameterLayout(n_knots).prior_precision(penalty, log_phi_prior))
