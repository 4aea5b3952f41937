"""Other ways to estimate the break, for comparison with the composite-link model.

Both alternatives need a monthly series, which the ledger does not have; they run on monthly
series reconstructed by the primary model given the published figures, so they are not
independent of it (the reconstruction carries its knots). What they test is whether the headline
effects survive a different estimator of the same shape:

- Lopez Bernal et al. (2017) segmented regression: negative binomial GLM with level and slope
  change at the break, alpha estimated, HAC standard errors (maxlags 3), fitted to each of M
  reconstructed draws and pooled with Rubin's rules (T = W + (1 + 1/M) B), so the uncertainty of
  the reconstruction is carried into the interval.
- A structural time series (statsmodels UnobservedComponents, deterministic trend) on the log of
  the median reconstruction with step and ramp intervention regressors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from milcourts.model.fit import FittedModel
from milcourts.model.observations import month_index as _month_index
from milcourts.model.simulate import Draws
from milcourts.vocabulary import ARTICLES

RUBIN_DRAWS = 100
HAC_MAXLAGS = 3


def _segmented_design(n_months: int, break_index: int) -> np.ndarray:
    t = np.arange(n_months, dtype=float)
    return np.column_stack(
        [np.ones(n_months), t - break_index, (t >= break_index).astype(float), np.clip(t - break_index, 0, None)]
    )


def rubin_pool(estimates: np.ndarray, variances: np.ndarray) -> tuple[float, float, float]:
    """Pooled estimate and 95% interval (t with Rubin's degrees of freedom)."""
    m = len(estimates)
    q_bar = float(np.mean(estimates))
    within = float(np.mean(variances))
    between = float(np.var(estimates, ddof=1))
    total = within + (1 + 1 / m) * between
    r = (1 + 1 / m) * between / within if within > 0 else np.inf
    dof = (m - 1) * (1 + 1 / r) ** 2 if np.isfinite(r) and r > 0 else 1e6
    half = stats.t.ppf(0.975, dof) * np.sqrt(total)
    return q_bar, q_bar - half, q_bar + half


def bernal_glm(fitted: FittedModel, draws: Draws, article: str = "337", n_draws: int = RUBIN_DRAWS) -> pd.DataFrame:
    """Segmented NB GLM on reconstructed draws, pooled with Rubin's rules (log scale, then exp)."""
    n = draws.n_observed
    break_index = _month_index(draws.months, fitted.spec.break_month)
    design = _segmented_design(n, break_index)
    days = np.array([m.days_in_month for m in draws.months[:n]], dtype=float)
    rows = ARTICLES.index(article)
    picks = np.linspace(0, len(draws.counts) - 1, n_draws).astype(int)
    estimates, variances = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the auxiliary alpha fit
        for i in picks:
            y = draws.counts[i, rows, :n]
            alpha = sm.NegativeBinomial(y, design, exposure=days, loglike_method="nb2").fit(disp=0).params[-1]
            glm = sm.GLM(y, design, family=sm.families.NegativeBinomial(alpha=max(alpha, 1e-8)), exposure=days)
            result = glm.fit(cov_type="HAC", cov_kwds={"maxlags": HAC_MAXLAGS, "use_correction": True})
            estimates.append(result.params)
            variances.append(np.diag(result.cov_params()))
    estimates, variances = np.array(estimates), np.array(variances)
    method = (
        f"segmented negative binomial GLM (alpha estimated, HAC maxlags {HAC_MAXLAGS}) on {n_draws} "
        "reconstructed draws, Rubin's rules"
    )
    step = rubin_pool(estimates[:, 2], variances[:, 2])
    pre = rubin_pool(estimates[:, 1], variances[:, 1])
    post = rubin_pool(
        estimates[:, 1] + estimates[:, 3], variances[:, 1] + variances[:, 3]
    )  # conservative: ignores covariance
    return pd.DataFrame(
        [
            (article, "level rate ratio at the break", *np.exp(step), method),
            (article, "monthly growth before the break (%)", *(100 * np.expm1(pre)), method),
            (article, "monthly growth after the break, one slope (%)", *(100 * np.expm1(post)), method),
        ],
        columns=["article", "effect", "estimate", "lower_95", "upper_95", "method"],
    )


def structural_time_series(fitted: FittedModel, draws: Draws, article: str = "337") -> pd.DataFrame:
    """Local linear trend on log counts with step and ramp at the break (median reconstruction)."""
    n = draws.n_observed
    break_index = _month_index(draws.months, fitted.spec.break_month)
    y = np.log1p(np.median(draws.counts[:, ARTICLES.index(article), :n], axis=0))
    exog = _segmented_design(n, break_index)[:, 2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A stochastic level (or AR(1) errors, whose coefficient runs to 1) absorbs the step on a
        # reconstructed series this smooth and leaves it unidentified (intervals of +-10^4 on the
        # log scale); a deterministic trend with white noise is the specification that answers.
        model = sm.tsa.UnobservedComponents(y, level="deterministic trend", exog=exog)
        result = model.fit(disp=False, maxiter=1000)
    names = list(result.params.index) if hasattr(result.params, "index") else model.param_names
    params = np.asarray(result.params)
    ci = np.asarray(result.conf_int())
    step = names.index("beta.x1") if "beta.x1" in names else len(names) - 2
    ramp = step + 1
    method = (
        "UnobservedComponents (deterministic trend, white noise) on the log median reconstruction, "
        f"step and ramp regressors; converged: {bool(result.mle_retvals.get('converged', False))}"
    )
    return pd.DataFrame(
        [
            (article, "level rate ratio at the break", np.exp(params[step]), *np.exp(ci[step]), method),
            (
                article,
                "change in monthly growth after the break (percentage points)",
                100 * np.expm1(params[ramp]),
                *(100 * np.expm1(ci[ramp])),
                method,
            ),
        ],
        columns=["article", "effect", "estimate", "lower_95", "upper_95", "method"],
    )


def comparison_table(
    fitted: FittedModel, draws: Draws, primary_effects: pd.DataFrame, article: str = "337"
) -> pd.DataFrame:
    """The headline effects side by side: primary model, segmented GLM, structural time series."""
    primary = primary_effects[
        (primary_effects["article"] == article) & primary_effects["effect"].str.startswith("level rate ratio")
    ].copy()
    primary["method"] = "primary: composite-link model fitted to the published aggregates (" + primary["method"] + ")"
    table = pd.concat(
        [primary, bernal_glm(fitted, draws, article), structural_time_series(fitted, draws, article)], ignore_index=True
    )
    table.insert(
        0,
        "estimator",
        ["composite link"] * len(primary) + ["segmented NB GLM (Rubin)"] * 3 + ["structural time series"] * 2,
    )
    return table
