"""What defines a fit: the choices (ModelSpec), the priors, and the layout of the parameter vector.

Every function that reads or writes the parameter vector goes through ParameterLayout, so the
position of a parameter is stated once instead of as `9 + 3 * k` offset arithmetic in each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from milcourts.vocabulary import ARTICLES, DEFAULT_BREAK_MONTH, MOBILISATION

# Relative standard deviation of a figure published as "about"/"nearly": such numbers are rounded
# to two significant digits (about 2,300; almost 16,000), a 2-6% error.
APPROX_RELATIVE_SD = 0.05
# Cases posted this long before a release are all in it (see likelihood.completeness()).
COMPLETE_AFTER_DAYS = 365
# Weak priors (penalties) that keep variance and lag parameters finite on a few dozen figures.
# phi (month-to-month variation of real counts around the trend) is not identified by a ledger with
# almost no single months: its posterior simply repeats any wide prior, and every monthly band then
# carries that width. Assumed instead: coefficient of variation about 10% (95% range 4% to 25%),
# plausible for monthly court intake in the hundreds. A sensitivity parameter, stated in reports.
PRIOR_LOG_PHI = (float(np.log(0.01)), 0.7)
PRIOR_LOG_ALPHA = (float(np.log(0.002)), 2.0)
# Reporting lag (likelihood.completeness): a case received on day d is on the court website by day
# s with probability 1 - exp(-(s - d)/tau). Prior: median 3 days, 95% from 0.7 to 13 days (up to two
# weeks). Its sources: Mediazona's notes that court cards appear late, and the ledger's revised
# pairs (Art. 337 in 2023: 5,024 on 29 Dec, 5,092 on 4 Mar, +1.35%), which on the full ledger pin tau
# at about 2 days (95% 1 to 3) under this prior or a wider one. A wider prior (median 7 days, 95% 1
# to 50) was measured and rejected: fits on early vintages, with few revised pairs, let tau wander to
# weeks and absorb misfit, and rolling-origin coverage fell from 35 to 32 of 38 figures. The late
# tail the pairs cannot see (cases posted months later) is why months only one release reaches are
# shown as provisional.
PRIOR_LOG_TAU_DAYS = (float(np.log(3.0)), 0.75)
# Month-level count distribution. "negative_binomial": variance mu + phi mu^2 with phi's prior
# above; "poisson": phi pinned at ~0 (a sensitivity check: month counts vary only by chance). The
# figure-level release discrepancy alpha is estimated under both.
LIKELIHOODS = ("negative_binomial", "poisson")
POISSON_LOG_PHI = (float(np.log(1e-6)), 0.01)
# Strength of shrinkage of the small series towards Art. 337, relative to the knot penalty.
ARTICLE_DEVIATION_PENALTY_RATIO = 4.0
PRE_TREND_SHRINKAGE = 50.0
# Counting base of "since mobilisation" running totals (period_start 21 Sep 2022). Mediazona's early
# running totals count cases under the parts of the articles created by the mobilisation law
# (337 parts 2.1/3.1/5 and their kind): the data README's "changing base" and methods.md section 7.
# The ledger shows it: Art. 337 since mobilisation to Feb 2024 (6,308) is below 2023 plus Jan-Feb 2024
# (6,326), Art. 338's (194) is 18% below its parts. Such a figure counts a share of each month's
# cases: rho[a] from January 2023 on, rho[a]*sigma[a] in Sep-Dec 2022, when most cases received were
# still for offences under the old parts. Priors on the logit scale: rho median 0.9 (95% 0.55-0.99),
# sigma median 0.5 (95% 0.05-0.95).
MOBILISATION_BASE_START = MOBILISATION
MOBILISATION_BASE_EARLY_MONTHS = pd.period_range("2022-09", "2022-12", freq="M")
PRIOR_LOGIT_BASE_SHARE = (float(np.log(0.9 / 0.1)), 1.0)
PRIOR_LOGIT_EARLY_SHARE = (0.0, 1.5)
# Weak prior on each log level step at the break: N(0, 3^2). A pre-break total that straddles the
# break (Art. 332: five cases in all of 2022) cannot separate the pre-break level from the step;
# the prior keeps the step finite and its interval then says how little the data tell.
PRIOR_STEP_SD = 3.0
# Weak proper priors on the otherwise unpenalised trend terms. A fit that sees no pre-break figure
# (a rolling origin before the 2021 and 2022 totals were published) cannot learn the pre-break
# slope at all; without a prior its variance is undefined, and a pseudo-inverse reports it as zero,
# which made back-casts of 2021 look precise. Pre-break slope: N(0, 1.2^2) per year (95% within
# +-22% a month, far beyond any plausible pre-mobilisation drift). Intercepts (log cases per day):
# N(0, 5^2), vague on any scale from a case a year to thousands a day.
PRIOR_PRE_SLOPE_SD = 1.2
PRIOR_INTERCEPT_SD = 5.0
# Penalties tried for the slope changes; the one with the largest Laplace-approximate marginal
# likelihood is kept (fit.fit_filings_model). The grid brackets the optimum on the real ledger.
PENALTY_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# The month range the model is built for. One pre-break log-linear trend cannot describe more than
# about a decade, and the reconstruction's memory grows with the square of the months (a figure
# dated in year 1000 asked for 12,000 months and gigabytes). Forecasts further ahead than three
# years say nothing (reports allow 24 months; validation's rolling origin needs at most a year).
MAX_MODELLED_MONTHS = 120
MAX_FORECAST_MONTHS = 36


# How the forecast continues the fitted log rate past the data (observations.design_matrix):
# "damped_trend" from the last modelled month along the recent slope, damped; "local_level" flat at
# the average of the last few months the ledger pins down (not provisional); "combination" the
# average of the two on the log scale (combinations are hard to beat out of sample, M4).
FORECAST_METHODS = ("damped_trend", "local_level", "combination")
# A month reached by figures of a single release, published less than this long after the month
# ended, is provisional: no later release has checked it, and late postings and counting changes
# show up exactly there (the ledger's revisions come two to four months after the first release).
PROVISIONAL_WITHIN_DAYS = 183


def phi_prior(likelihood: str) -> tuple[float, float]:
    """Mean and standard deviation of log phi under the month-count likelihood."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    return PRIOR_LOG_PHI if likelihood == "negative_binomial" else POISSON_LOG_PHI


@dataclass(frozen=True)
class ModelSpec:
    """Choices that define a fit; every one is a notebook or CLI parameter."""

    break_month: str = DEFAULT_BREAK_MONTH
    knot_offsets_months: tuple[int, ...] = (3, 6, 9, 12, 18, 24)
    forecast_months: int = 6
    forecast_damping: float = 0.8  # slope kept per month past the data (1 = undamped log-linear trend)
    # see FORECAST_METHODS: the one checks.validation.choose_forecast_method picks on the rolling origin
    # (calibrated, then the lowest interval score); the methods report says if the two ever differ
    forecast_method: str = "combination"
    penalty_grid: tuple[float, ...] = PENALTY_GRID
    likelihood: str = "negative_binomial"  # or "poisson" (see LIKELIHOODS)
    exposure: str = "calendar_days"  # or "working_days" (see inputs.exposure.EXPOSURES)
    n_draws: int = 2000
    seed: int = 20221021


class ModelRangeError(ValueError):
    """The figures or the forecast ask for months the model was not built for."""


def check_month_range(figures: pd.DataFrame, months: pd.PeriodIndex, forecast_months: int = 0) -> None:
    """Refuse, before anything is allocated, a month range the model was not built for."""
    if len(months) > MAX_MODELLED_MONTHS:
        earliest = figures.loc[figures["period_start"].idxmin()] if len(figures) else None
        latest = figures.loc[figures["period_end"].idxmax()] if len(figures) else None
        which = (
            (
                f" (figure {earliest['figure_id']} starts {earliest['period_start'].date()}, "
                f"figure {latest['figure_id']} ends {latest['period_end'].date()})"
            )
            if earliest is not None
            else ""
        )
        raise ModelRangeError(
            f"the figures span {months[0]} to {months[-1]}, {len(months):,} months{which}; the model is built "
            f"for at most {MAX_MODELLED_MONTHS} months (one pre-break trend): check those dates in the ledger"
        )
    if not 0 <= forecast_months <= MAX_FORECAST_MONTHS:
        raise ModelRangeError(
            f"a forecast of {forecast_months} months past {months[-1] if len(months) else 'the data'} "
            f"was asked for; the model forecasts 0 to {MAX_FORECAST_MONTHS} months ahead"
        )


@dataclass(frozen=True)
class ParameterLayout:
    """Where each parameter sits in the vector the optimiser sees, for a fit with `n_knots` knots.

    Per article (337, 338, 332) three trend terms: the intercept (log cases per day at the break),
    the pre-break slope (per year; for 338 and 332 their deviation from 337's, shrunk to 0) and the
    level step at the break. Then the slope changes at the knots of Art. 337, the deviations of
    338 and 332 from them, the three variance and lag parameters, and the counting-base shares.
    """

    n_knots: int

    intercepts = (0, 3, 6)
    pre_slope = 1  # Art. 337's pre-break slope
    pre_slope_deviations = (4, 7)  # 338 and 332 minus 337
    steps = (2, 5, 8)

    @property
    def trend(self) -> slice:
        """The nine per-article trend terms, article-major (intercept, slope, step)."""
        return slice(0, 9)

    @property
    def knots(self) -> slice:
        return slice(9, 9 + self.n_knots)

    @property
    def knot_deviations(self) -> slice:
        """338's then 332's deviations from 337's slope changes."""
        return slice(9 + self.n_knots, 9 + 3 * self.n_knots)

    @property
    def log_phi(self) -> int:
        return 9 + 3 * self.n_knots

    @property
    def log_alpha(self) -> int:
        return 10 + 3 * self.n_knots

    @property
    def log_tau(self) -> int:
        return 11 + 3 * self.n_knots

    @property
    def base_shares(self) -> slice:
        """Logit rho per article: share of cases "since mobilisation" totals count from 2023."""
        return slice(12 + 3 * self.n_knots, 15 + 3 * self.n_knots)

    @property
    def early_shares(self) -> slice:
        """Logit sigma per article: the further share counted in Sep-Dec 2022."""
        return slice(15 + 3 * self.n_knots, 18 + 3 * self.n_knots)

    @property
    def size(self) -> int:
        return 18 + 3 * self.n_knots

    def names(self, knots: tuple[int, ...]) -> list[str]:
        """Readable names, in order (knots: their offsets in months after the break)."""
        names = []
        for a in ARTICLES:
            names += [f"{a}:intercept", f"{a}:pre_slope" if a == "337" else f"{a}:pre_slope_minus_337", f"{a}:step"]
        names += [f"337:knot+{k}" for k in knots]
        for a in ARTICLES[1:]:
            names += [f"{a}:knot+{k}_minus_337" for k in knots]
        names += ["log_phi", "log_alpha", "log_tau_days"]
        names += [f"{a}:logit_mobilisation_base_share" for a in ARTICLES]
        return names + [f"{a}:logit_mobilisation_base_early_share" for a in ARTICLES]

    def prior_precision(self, penalty: float, log_phi_prior: tuple[float, float]) -> np.ndarray:
        """Diagonal of the (constant) Hessian of every penalty and prior: all are quadratic."""
        diagonal = np.zeros(self.size)
        diagonal[self.knots] = penalty
        diagonal[self.knot_deviations] = penalty * ARTICLE_DEVIATION_PENALTY_RATIO
        diagonal[list(self.pre_slope_deviations)] = PRE_TREND_SHRINKAGE
        diagonal[list(self.steps)] = 1 / PRIOR_STEP_SD**2
        diagonal[self.pre_slope] = 1 / PRIOR_PRE_SLOPE_SD**2
        diagonal[list(self.intercepts)] = 1 / PRIOR_INTERCEPT_SD**2
        diagonal[self.log_phi] = 1 / log_phi_prior[1] ** 2
        diagonal[self.log_alpha] = 1 / PRIOR_LOG_ALPHA[1] ** 2
        diagonal[self.log_tau] = 1 / PRIOR_LOG_TAU_DAYS[1] ** 2
        diagonal[self.base_shares] = 1 / PRIOR_LOGIT_BASE_SHARE[1] ** 2
        diagonal[self.early_shares] = 1 / PRIOR_LOGIT_EARLY_SHARE[1] ** 2
        return diagonal

    def prior_mean(self, log_phi_prior: tuple[float, float]) -> np.ndarray:
        """Where each prior is centred (zero for the trend terms and penalised changes)."""
        mean = np.zeros(self.size)
        mean[self.log_phi] = log_phi_prior[0]
        mean[self.log_alpha] = PRIOR_LOG_ALPHA[0]
        mean[self.log_tau] = PRIOR_LOG_TAU_DAYS[0]
        mean[self.base_shares] = PRIOR_LOGIT_BASE_SHARE[0]
        mean[self.early_shares] = PRIOR_LOGIT_EARLY_SHARE[0]
        return mean
