"""Exact gradients and Hessians of the penalised log-likelihood, by automatic differentiation (JAX).

The likelihood is written once (model.likelihood) for numpy and JAX; here it is traced with JAX
and compiled. The compiled functions are keyed by the observation pattern (which figures are
points, bounds and revisions; array shapes), not by the values, so the replicates of a simulation,
the penalties of a grid and every refit of the same pattern reuse one compilation.

Every JAX array here is float64: the Laplace approximation inverts the Hessian, and single
precision would leave only three or four digits of it.
"""

from __future__ import annotations

import functools
import os
import re
from typing import NamedTuple

# Asks XLA for single-threaded Eigen matrix products (no measurable difference here: the products
# are small). Must be set before JAX starts. XLA's runtime still runs independent parts of a
# computation on a pool of one thread per core (a Hessian keeps about 1.6 of two cores busy), which
# was measured rather than assumed harmless: the real ledger's fit (parameters and covariance) came
# out bit-identical with that pool at 1, 2 and 4 threads (PJRT_NPROC), and one thread made neither
# the test suite nor `make validate` (two processes fitting side by side) any faster (1.01 and 1.00
# of the wall time, two pairs each), while a lone Hessian took 28 to 31 ms instead of 22 to 25.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy import linalg as jlinalg  # noqa: E402
from jax.scipy import special as jspecial  # noqa: E402

from milcourts.model.likelihood import Backend, FigureRoles, figure_roles, total_loglik  # noqa: E402
from milcourts.model.spec import ParameterLayout  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

# Relative step of the central differences for the incomplete beta function's shape arguments.
SHAPE_STEP = 1e-4


@jax.custom_jvp
def betainc(a, b, x):
    """Regularised incomplete beta I_x(a, b), differentiable in all three arguments.

    The value is JAX's own continued fraction (agrees with scipy to 1e-11 over the shapes and
    counts a bound can have, checked in the tests), but JAX never differentiates through its loop:
    those derivatives took 7 of the 11 s of compiling the Hessian. In x the derivative is exact
    (the beta density); in the shapes a and b (a bound's negative binomial size depends on the
    parameters) it is a central difference of this same function, itself differentiable, so
    Hessians exist. Only the few bound figures use it; the difference's error (relative ~1e-7) is
    far below the optimiser's tolerance. (Computed inside the compiled code, not by calling scipy
    from it: those calls took three quarters of a gradient's time.)
    """
    return jspecial.betainc(a, b, x)


@betainc.defjvp
def _betainc_jvp(primals, tangents):
    a, b, x = jnp.broadcast_arrays(*primals)
    da, db, dx = tangents
    ha = SHAPE_STEP * jnp.maximum(1.0, jnp.abs(a))
    hb = SHAPE_STEP * jnp.maximum(1.0, jnp.abs(b))
    # the value and the four shifted values in one evaluation of the continued fraction
    values = betainc(jnp.stack([a, a + ha, a - ha, a, a]), jnp.stack([b, b, b, b + hb, b - hb]), jnp.stack([x] * 5))
    d_a = (values[1] - values[2]) / (2 * ha)
    d_b = (values[3] - values[4]) / (2 * hb)
    # x kept off 0 and 1, where the density's logarithms (and their derivatives) are infinite: a
    # bound the fit breaks by far has a tail near 0 or 1, and inf * 0 there made Hessians nan
    inside = jnp.clip(x, 1e-300, 1 - 1e-16)
    log_density = (a - 1) * jnp.log(inside) + (b - 1) * jnp.log1p(-inside) - jspecial.betaln(a, b)
    return values[0], d_a * da + d_b * db + jnp.exp(log_density) * dx


@jax.custom_jvp
def inverse_and_logdet(matrix):
    """Inverse and log-determinant of symmetric positive definite matrices (batched), by Cholesky;
    nan where a matrix is not positive definite.

    Differentiated by the matrix identities d(S^-1) = -S^-1 dS S^-1 and d log|S| = tr(S^-1 dS)
    instead of through the factorisation's loops: the Hessian of the likelihood then costs matrix
    products, and compiled in a quarter of the time.
    """
    chol = jnp.linalg.cholesky(matrix)
    eye = jnp.broadcast_to(jnp.eye(matrix.shape[-1]), matrix.shape)
    inverse = jlinalg.cho_solve((chol, True), eye)
    logdet = 2 * jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return inverse, logdet


@inverse_and_logdet.defjvp
def _inverse_and_logdet_jvp(primals, tangents):
    (matrix,), (d_matrix,) = primals, tangents
    inverse, logdet = inverse_and_logdet(matrix)
    return (inverse, logdet), (
        -inverse @ d_matrix @ inverse,
        (inverse * jnp.swapaxes(d_matrix, -1, -2)).sum(axis=(-2, -1)),
    )


JAX = Backend(jnp, jspecial.gammaln, jspecial.expit, betainc, inverse_and_logdet)


class LikelihoodData(NamedTuple):
    """The arrays of an Observations the likelihood reads (a JAX pytree), padded to block sizes."""

    weights: np.ndarray
    article_mask: np.ndarray
    lag_first: np.ndarray
    covered_days: np.ndarray
    days: np.ndarray
    value: np.ndarray
    design: np.ndarray
    roles: FigureRoles


# Shapes are padded so that fits of nearby sizes (rolling origins, leave-one-out, simulated
# replicates, sensitivity variants) share one compilation, which costs about 8 s against 1 to 30 ms
# for a call. The figures are sorted into two blocks (see FigureRoles): the point figures, at least
# MIN_POINTS of them (the real ledger has 42; the simulation check publishes its bounds as points,
# 46), and the bounds and revisions, at least MIN_OTHERS (it has 7), beyond that whole blocks;
# months at least MIN_MONTHS (48). An empty figure (no weight, no role) and an empty month (no
# days) change nothing in the likelihood. Knots are padded to the default specification's six (a
# hinge with a zero column and its parameter held at zero).
# Padding is not free: the point figures' covariance grows with the square of its size and its
# inverse with the cube, and the incomplete beta function runs on every figure of the second block.
# Beyond the minimum, point figures go in blocks of 16: a Hessian of 64 took the same 30 ms as one
# of 52, while each further shape is a further compilation (a ledger that grows, or its rolling
# origins, pass through three shapes where blocks of 4 made twelve).
MIN_POINTS, POINT_BLOCK = 48, 16
MIN_OTHERS, OTHER_BLOCK = 8, 4
MIN_MONTHS, MONTH_BLOCK = 48, 12
MIN_KNOTS = 6


def _round_up(n: int, minimum: int, block: int) -> int:
    return max(minimum, -(-n // block) * block)


def _pad(array: np.ndarray, shape: tuple[int, ...], fill=0) -> np.ndarray:
    out = np.full(shape, fill, dtype=np.asarray(array).dtype)
    out[tuple(slice(0, n) for n in np.shape(array))] = array
    return out


def _place(array, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """The figures' rows of `array` moved to `rows` of an array of n_rows, zeros elsewhere."""
    array = np.asarray(array)
    out = np.zeros((n_rows, *array.shape[1:]), dtype=array.dtype)
    out[rows] = array
    return out


def likelihood_data(obs, design: np.ndarray) -> LikelihoodData:
    """Observations and the design of the observed months, the figures sorted into their two blocks
    and every axis padded (see MIN_POINTS)."""
    n_months = obs.weights.shape[1]
    n_knots = design.shape[1] - 3
    roles = figure_roles(obs)
    points, others = np.flatnonzero(roles.is_point), np.flatnonzero(~roles.is_point)
    n_point = _round_up(len(points), MIN_POINTS, POINT_BLOCK)
    n_figures = n_point + _round_up(len(others), MIN_OTHERS, OTHER_BLOCK)
    t, k = _round_up(n_months, MIN_MONTHS, MONTH_BLOCK), max(n_knots, MIN_KNOTS)
    rows = np.empty(len(roles.is_point), dtype=int)  # each figure's row in the padded arrays
    rows[points] = np.arange(len(points))
    rows[others] = n_point + np.arange(len(others))
    other_rows = np.arange(n_point, n_figures)
    partner = other_rows.copy()  # padding and bounds: themselves
    partner[: len(others)] = rows[roles.partner[others]]

    def figures(array, width: int | None = None) -> np.ndarray:
        placed = _place(np.asarray(array, float), rows, n_figures)
        return placed if width is None else _pad(placed, (n_figures, width))

    placed_roles = FigureRoles(
        is_point=_place(roles.is_point, rows, n_figures)[:n_point],
        is_approx=_place(roles.is_approx, rows, n_figures)[:n_point],
        is_bound=_place(roles.is_bound, rows, n_figures)[n_point:],
        is_lower=_place(roles.is_lower, rows, n_figures)[n_point:],
        is_revision=_place(roles.is_revision, rows, n_figures)[n_point:],
        partner=partner,
        is_based=_place(roles.is_based, rows, n_figures),
        is_early_month=_pad(roles.is_early_month, (t,), False),
    )
    return LikelihoodData(
        figures(obs.weights, t),
        figures(obs.article_mask),
        figures(obs.lag_first, t),
        figures(obs.covered_days, t),
        _pad(np.asarray(obs.days, float), (t,)),
        figures(obs.value),
        _pad(np.asarray(design[:n_months], float), (t, 3 + k)),
        placed_roles,
    )


def padded_positions(n_knots: int) -> np.ndarray:
    """Where each parameter of a fit with `n_knots` knots sits in the padded parameter vector."""
    padded = max(n_knots, MIN_KNOTS)
    small, large = ParameterLayout(n_knots), ParameterLayout(padded)
    out = np.empty(small.size, dtype=int)
    out[small.trend] = np.arange(9)
    out[small.knots] = np.arange(large.knots.start, large.knots.start + n_knots)
    for a in range(2):
        out[small.knot_deviations.start + a * n_knots : small.knot_deviations.start + (a + 1) * n_knots] = np.arange(
            large.knot_deviations.start + a * padded, large.knot_deviations.start + a * padded + n_knots
        )
    out[small.log_phi :] = np.arange(large.log_phi, large.size)
    return out


# Where the point figures' covariance is not positive definite (far from any optimum) the value is
# this large instead of nan, so that a trust region shrinks rather than failing.
INFEASIBLE = 1e12
# Step of the central differences of the exact gradient where the exact Hessian is not finite.
HESSIAN_FALLBACK_STEP = 1e-5


def negative_log_posterior(params, data: LikelihoodData, prior_mean, prior_precision):
    loglik = total_loglik(params[None], data, data.design, JAX, data.roles)[0]
    value = -loglik + 0.5 * jnp.sum((params - prior_mean) ** 2 * prior_precision)
    return jnp.where(jnp.isfinite(value), value, INFEASIBLE)


_value_and_gradient = jax.jit(jax.value_and_grad(negative_log_posterior))
_gradient = jax.grad(negative_log_posterior)

# Directions of the Hessian taken together (forward mode over the gradient). All 36 at once
# (jax.hessian) carry 36 copies of the point figures' covariance algebra through every step: a
# Hessian took 8 ms for 44 point figures but 20 to 25 ms for 48 and more (likely the working set
# outgrowing the processor's cache); in batches of 9 it takes 11 ms for 40 to 48 (batches of 6,
# 12 and 18: 11 to 18 ms).
HESSIAN_BATCH = 9


@jax.jit
def _hessian(params, data: LikelihoodData, prior_mean, prior_precision):
    def along(direction):
        return jax.jvp(lambda p: _gradient(p, data, prior_mean, prior_precision), (params,), (direction,))[1]

    return jax.lax.map(along, jnp.eye(params.shape[0]), batch_size=HESSIAN_BATCH)


# The compiled functions of this process, by function and argument shapes. Compiling the two for a
# shape takes about 17 s of processor time (11 s on two cores); a worker process that repeats the
# same fits (validation's simulated replicates) is given its parent's instead (exported_compilations,
# install_compilations), serialised and sent down the pool's pipe, never through a file.
_FUNCTIONS = {"value_and_gradient": _value_and_gradient, "hessian": _hessian}
_COMPILED: dict[tuple, jax.stages.Compiled] = {}


def _signature(args) -> tuple:
    """What a compilation depends on: the arguments' tree and every leaf's shape and dtype."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    return str(tree), tuple((tuple(np.shape(leaf)), np.dtype(leaf.dtype).str) for leaf in leaves)


def _external_calls(compiled: jax.stages.Compiled) -> set[str]:
    return set(re.findall(r'custom_call_target="([^"]+)"', compiled.as_text()))


def serialised(compiled: jax.stages.Compiled) -> tuple | None:
    """A compiled function as bytes and its argument and result trees, for loaded() in another
    process of the same machine and installation (a worker this one starts), sent down the pool's
    pipe. None unless its only calls out of compiled code are LAPACK's (the Cholesky
    factorisation and triangular solves), which loaded() prepares."""
    from jax.experimental.serialize_executable import serialize

    if not all(target.startswith("lapack_") for target in _external_calls(compiled)):
        return None
    return serialize(compiled)


@functools.cache
def _prepare_lapack() -> None:
    """A loaded function calls LAPACK through pointers that JAX fills in only when it first lowers
    a LAPACK operation: run before that, in a fresh worker, it crashed the process (segmentation
    fault). Lowering one factorisation and solve (not running them) fills them in, once a process."""
    jax.jit(lambda m: jlinalg.cho_solve((jnp.linalg.cholesky(m), True), m)).lower(jnp.eye(2))


def loaded(exported: tuple) -> jax.stages.Compiled | None:
    """The function serialised() made, ready to call here; None should it fail to load (the
    caller then compiles it itself: an optimisation only, same function either way)."""
    from jax.experimental.serialize_executable import deserialize_and_load

    _prepare_lapack()
    try:
        return deserialize_and_load(*exported)
    except Exception:  # noqa: BLE001
        return None


def exported_compilations() -> list[tuple]:
    """The likelihood's functions this process has compiled (see serialised), for
    install_compilations in a worker."""
    return [(key, exported) for key, compiled in _COMPILED.items() if (exported := serialised(compiled)) is not None]


def install_compilations(exported: list[tuple]) -> None:
    """Use a parent process's compilations (exported_compilations) here; one that fails to load is
    compiled here when first needed."""
    for key, payload in exported:
        compiled = loaded(payload)
        if compiled is not None:
            _COMPILED.setdefault(key, compiled)


def compiled_here() -> list[str]:
    """The names of the functions compiled for (or installed in) this process, one per shape."""
    return [name for name, _ in _COMPILED]


class ExactObjective:
    """The penalised negative log-likelihood of a fit, with its exact gradient and Hessian.

    Takes and returns the fit's own parameter vector; the compiled functions see it embedded in
    the padded one (see likelihood_data).
    """

    INFEASIBLE = INFEASIBLE

    def __init__(self, obs, design: np.ndarray, prior_mean: np.ndarray, prior_precision: np.ndarray):
        n_knots = design.shape[1] - 3
        self.positions = padded_positions(n_knots)
        self.size = ParameterLayout(max(n_knots, MIN_KNOTS)).size
        self.data = jax.device_put(likelihood_data(obs, design))
        self.prior_mean = jnp.asarray(self._embed(prior_mean, 0.0))
        self.prior_precision = jnp.asarray(self._embed(prior_precision, 1.0))
        # arguments of the compiled functions' shapes, to compile with (see _compiled)
        self._example = (np.zeros(self.size), self.data, self.prior_mean, self.prior_precision)
        self._key = _signature(self._example)

    def _compiled(self, name: str) -> jax.stages.Compiled:
        """The function compiled for this objective's shapes: this process's or its parent's."""
        compiled = _COMPILED.get((name, self._key))
        if compiled is None:
            compiled = _COMPILED[(name, self._key)] = _FUNCTIONS[name].lower(*self._example).compile()
        return compiled

    def _embed(self, params: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(self.size, fill)
        out[self.positions] = params
        return out

    def __call__(self, params: np.ndarray) -> float:
        """The value alone, from the same compiled function as the gradient (one compilation)."""
        return self.value_and_gradient(params)[0]

    def value_and_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = self._compiled("value_and_gradient")(
            self._embed(params, 0.0), self.data, self.prior_mean, self.prior_precision
        )
        return float(value), np.asarray(gradient)[self.positions]

    def gradient(self, params: np.ndarray) -> np.ndarray:
        return self.value_and_gradient(params)[1]

    def hessian(self, params: np.ndarray) -> np.ndarray:
        hess = np.asarray(
            self._compiled("hessian")(self._embed(params, 0.0), self.data, self.prior_mean, self.prior_precision)
        )
        hess = hess[np.ix_(self.positions, self.positions)]
        if not np.isfinite(hess).all():
            # rare: a bound the fit breaks by far puts the incomplete beta function where its second
            # derivatives overflow; central differences of the exact gradient stand in there
            step = HESSIAN_FALLBACK_STEP * np.eye(len(params))
            hess = np.column_stack(
                [(self.gradient(params + e) - self.gradient(params - e)) / (2 * e.sum()) for e in step]
            )
        return (hess + hess.T) / 2
