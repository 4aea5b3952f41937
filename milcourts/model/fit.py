"""Penalised maximum likelihood with the penalty chosen by the Laplace-approximate marginal likelihood.

The slope changes at the knots carry a ridge penalty whose strength is chosen over a grid by
LAML (Wood 2011); the posterior covariance is the inverse penalised Hessian at the optimum (the
Laplace approximation every interval is drawn from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize

from milcourts.inputs.constraints import ConstraintView
from milcourts.model.likelihood import penalty_hessian, penalty_terms
from milcourts.model.observations import Observations, design_matrix, month_index, prepare_observations, supported_knots
from milcourts.model.spec import PRIOR_LOG_PHI, ModelSpec, ParameterLayout, phi_prior

if TYPE_CHECKING:
    from milcourts.model.derivatives import ExactObjective

# Largest absolute gradient of the penalised log-likelihood accepted as an optimum (the gradient is
# exact: finite differences needed 0.05).
CONVERGED_GRADIENT = 1e-3
# Newton steps continue until the gradient is below this.
NEWTON_GRADIENT = 1e-6
# The quasi-Newton search stops here and hands over to Newton: asked for NEWTON_GRADIENT itself it
# often ended in a failing line search ("precision loss"), 70 to 90 evaluations for nothing, where
# two Newton steps with the exact Hessian (11 ms each) finish the job (real ledger's joint fit:
# 201 gradients and 13 Hessians instead of 438 and 8; 0.40 -> 0.34 s).
QUASI_NEWTON_GRADIENT = 1e-4
# A Newton step that ends at the optimum (gradient below NEWTON_GRADIENT) and is shorter than this,
# in posterior standard deviations (its length in the metric of the penalised Hessian), keeps the
# Hessian it was taken with as the curvature at the optimum. From the quasi-Newton search's end
# the one step that finishes is 3e-6 to 3e-5 of a standard deviation long (the real ledger's six
# penalties, 60 simulated replicates), and taking the Hessian again there changed no posterior
# standard deviation by more than 7e-6 of itself, far below the three digits any report prints;
# it cost a quarter of a simulated replicate's refit. Fits that have not converged step and take
# the Hessian as before.
CURVATURE_KEPT_STEP = 1e-4


@dataclass
class FittedModel:
    spec: ModelSpec
    obs: Observations
    params: np.ndarray
    cov: np.ndarray
    penalty: float
    penalised_loglik: float
    selection: pd.DataFrame = field(repr=False)
    names: list[str] = field(repr=False)
    knots: tuple[int, ...] = ()
    conflicts: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    hess_lik: np.ndarray | None = field(default=None, repr=False)

    def observed_design(self) -> np.ndarray:
        """The design matrix of the modelled months (no forecast rows), as the fit used it."""
        return design_matrix(len(self.obs.months), month_index(self.obs.months, self.spec.break_month), self.knots)


def _start_values(n_knots: int, obs: Observations, log_phi_prior=PRIOR_LOG_PHI) -> np.ndarray:
    """Prior means, with intercepts at the average daily rate the figures imply."""
    layout = ParameterLayout(n_knots)
    start = layout.prior_mean(log_phi_prior)
    rate = np.log(max(obs.value.mean() / max(obs.weights.sum(axis=1).mean(), 1), 1) / 30.4)
    start[list(layout.intercepts)] = [rate, rate - 3, rate - 2]
    return start


def _objective(obs, design, penalty: float, log_phi_prior) -> ExactObjective:
    # imported here: JAX loads (about a second) only in a process that fits, not in every report
    # kernel that imports this module for FittedModel
    from milcourts.model.derivatives import ExactObjective

    layout = ParameterLayout(design.shape[1] - 3)
    return ExactObjective(obs, design, layout.prior_mean(log_phi_prior), layout.prior_precision(penalty, log_phi_prior))


def _minimise(
    objective: ExactObjective, start: np.ndarray, previous_hess_lik: np.ndarray | None, hess_penalty: np.ndarray
):
    """BFGS on the exact gradient (about half a millisecond a step), seeded with the inverse of an
    exact curvature: near a previous optimum (the next penalty of the grid, a replicate or refit of
    the same pattern) that fit's likelihood Hessian plus this penalty's; from scratch the Hessian at
    the start. Newton finishes (fit._newton). From the prior means on the real ledger that is one
    Hessian and about 100 BFGS steps, where a trust region with the exact Hessian took 14 Hessians
    for the same optimum (to 1e-7); the trust region stays as the fallback."""
    if previous_hess_lik is None:
        previous_hess_lik = objective.hessian(start) - hess_penalty
    if np.isfinite(previous_hess_lik).all():
        hess = previous_hess_lik + hess_penalty
        eigenvalues, vectors = np.linalg.eigh((hess + hess.T) / 2)
        inverse = (vectors / np.maximum(eigenvalues, 1e-6 * eigenvalues.max())) @ vectors.T
        inverse = (inverse + inverse.T) / 2  # positive definite by construction, symmetric to rounding
        result = optimize.minimize(
            objective.value_and_gradient,
            start,
            jac=True,
            method="BFGS",
            options={"maxiter": 3000, "gtol": QUASI_NEWTON_GRADIENT, "hess_inv0": inverse},
        )
        if np.isfinite(result.fun) and result.fun < objective.INFEASIBLE:
            return result
    return optimize.minimize(
        objective.value_and_gradient,
        start,
        jac=True,
        hess=objective.hessian,
        method="trust-exact",
        options={"maxiter": 500, "gtol": NEWTON_GRADIENT},
    )


def _posterior_covariance(hess: np.ndarray, hess_penalty: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse of the penalised Hessian and its smallest eigenvalue.

    Every parameter has a proper prior, so the penalised Hessian is positive definite at an optimum;
    should an eigenvalue still come out below the weakest prior precision (a non-convex stretch of
    the likelihood), it is floored there (never at zero: a pseudo-inverse would call an unlearnt
    direction exact).
    """
    eigenvalues, vectors = np.linalg.eigh((hess + hess.T) / 2)
    floor = float(np.diag(hess_penalty).min())
    inverse = (vectors / np.maximum(eigenvalues, floor)) @ vectors.T
    return (inverse + inverse.T) / 2, float(eigenvalues.min())


def _newton(objective: ExactObjective, result, hess_penalty: np.ndarray, max_steps: int = 6):
    """Newton steps with the exact Hessian until the gradient vanishes; returns the optimum and
    the likelihood's Hessian there (the Laplace approximation's curvature).

    The quasi-Newton search ends close to the optimum but with an approximate curvature; Newton
    with the exact one converges quadratically from there. Steps are halved until the objective
    decreases, so a step can never make the fit worse.

    A step that reaches the optimum and is shorter than CURVATURE_KEPT_STEP keeps the Hessian it
    was taken with as the curvature there (see that constant); after any other step the Hessian
    is taken again.
    """
    hess = objective.hessian(result.x)
    value, gradient = objective.value_and_gradient(result.x)
    for _ in range(max_steps):
        if np.abs(gradient).max() < NEWTON_GRADIENT:
            break
        cov, _ = _posterior_covariance(hess, hess_penalty)
        step = cov @ gradient
        for _ in range(8):
            candidate = result.x - step
            candidate_value, candidate_gradient = objective.value_and_gradient(candidate)
            if candidate_value < value:
                break
            step = step / 2
        else:
            break
        result = optimize.OptimizeResult(x=candidate, fun=candidate_value, nit=result.nit + 1)
        value, gradient = candidate_value, candidate_gradient
        if np.abs(gradient).max() < NEWTON_GRADIENT and step @ hess @ step <= CURVATURE_KEPT_STEP**2:
            break
        hess = objective.hessian(result.x)
    return result, hess - hess_penalty


def fit_filings_model(
    view: ConstraintView,
    spec: ModelSpec = ModelSpec(),
    train_end: pd.Timestamp | None = None,
    warm_start: FittedModel | None = None,
) -> FittedModel:
    """Penalised maximum likelihood; the penalty on slope changes is the one with the largest
    Laplace-approximate marginal likelihood (LAML, Wood 2011):

        LAML(lambda) = penalised loglik at the optimum + (1/2) log|S_lambda|+ - (1/2) log|H + S_lambda|

    AIC with effective degrees of freedom is reported beside it but not used: on this ledger it is
    flat to within one unit from penalty 0.001 to 0.03 and drifts to the smallest penalty tried
    (under-smoothing, the known weakness of prediction-error criteria for smoothing parameters),
    while LAML has a clear interior maximum."""
    return fit_observations(prepare_observations(view, train_end, spec.exposure), spec, warm_start, view.conflicts)


def fit_observations(
    obs: Observations,
    spec: ModelSpec = ModelSpec(),
    warm_start: FittedModel | None = None,
    conflicts: pd.DataFrame | None = None,
) -> FittedModel:
    """fit_filings_model on observations already prepared: a simulated replicate of a pattern
    changes only the values (Observations.with_values), and preparing them again from its view took
    a sixth of the replicate's time."""
    if len(obs.value) == 0:
        raise ValueError("no usable figure to fit the model to")
    break_index = month_index(obs.months, spec.break_month)
    knots = supported_knots(spec, len(obs.months), break_index)
    design = design_matrix(len(obs.months), break_index, knots)
    log_phi_prior = phi_prior(spec.likelihood)
    start = _start_values(len(knots), obs, log_phi_prior)
    rows, best, hess_lik = [], None, None
    if warm_start is not None and warm_start.knots == knots and warm_start.spec.likelihood == spec.likelihood:
        # same design (e.g. a simulated replicate of the same pattern): start from its optimum and
        # curvature, which cuts the optimiser's iterations several-fold
        start = warm_start.params
        hess_lik = warm_start.hess_lik
    elif warm_start is not None:
        # another design (a rolling origin with fewer knots, a refit without a figure): its optimum
        # is still a far better start than the prior means for the parameters the two share
        shared = dict(zip(warm_start.names, warm_start.params))
        names = ParameterLayout(len(knots)).names(knots)
        start = np.array([shared.get(name, value) for name, value in zip(names, start)])
    n_penalised = 3 * len(knots)  # knot changes of Art. 337 plus the two small series' deviations
    for penalty in sorted(spec.penalty_grid, reverse=True):  # smooth first: each warm-starts the next
        objective = _objective(obs, design, penalty, log_phi_prior)
        hess_penalty = penalty_hessian(len(knots), penalty, log_phi_prior)
        result = _minimise(objective, start, hess_lik, hess_penalty)
        result, hess_lik = _newton(objective, result, hess_penalty)
        # the objective is -loglik + the quadratic penalties, so the log-likelihood is read off it
        # (a separate numpy evaluation cost a tenth of a simulated replicate's refit)
        loglik = float(penalty_terms(result.x, len(knots), penalty, log_phi_prior)[0]) - float(result.fun)
        cov, min_eigenvalue = _posterior_covariance(hess_lik + hess_penalty, hess_penalty)
        edf = float(np.trace(hess_lik @ cov))
        aic = -2 * loglik + 2 * edf
        _, logdet = np.linalg.slogdet(np.linalg.inv(cov))
        laml = -float(result.fun) + 0.5 * n_penalised * np.log(penalty) - 0.5 * logdet
        gradient_norm = float(np.abs(objective.gradient(result.x)).max())
        rows.append(
            {
                "penalty": penalty,
                "loglik": loglik,
                "effective_df": edf,
                "aic": aic,
                "log_marginal_likelihood": laml,
                # what matters is whether the exact gradient has vanished, not how the
                # quasi-Newton search ended
                "converged": gradient_norm < CONVERGED_GRADIENT,
                "iterations": int(result.nit),
                "gradient_norm": gradient_norm,
                "min_hessian_eigenvalue": min_eigenvalue,
            }
        )
        if best is None or laml > best[0]:
            best = (laml, penalty, result, cov, hess_lik)
        start = result.x
    _, penalty, result, cov, best_hess_lik = best
    selection = pd.DataFrame(rows)
    selection["is_chosen"] = selection["penalty"] == penalty
    return FittedModel(
        spec=spec,
        obs=obs,
        params=result.x,
        cov=cov,
        penalty=penalty,
        penalised_loglik=-float(result.fun),
        selection=selection,
        names=ParameterLayout(len(knots)).names(knots),
        knots=knots,
        conflicts=pd.DataFrame() if conflicts is None else conflicts,
        hess_lik=best_hess_lik,
    )
