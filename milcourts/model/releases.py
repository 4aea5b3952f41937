"""How complete each release was when it was published: reporting lag, release by release.

Courts post cases on their websites late, so a release counts only part of the cases of its last
days. The model has one lag for all releases (likelihood.completeness), and the ledger can inform
it only where a period was published again later: the revised pairs. This table makes both
visible, release by release:

- for every release, the share of the cases received in the last LAST_DAYS days it counts that
  it had already posted, under the model's shared lag (with the 95% range of the lag's draws);
- for a release whose figures were published again later, the share it had actually shown (its
  figures over the later ones, pooled; exact binomial interval), the share the fitted model
  expects for the same pairs (which also accounts for windows that differ by a few days), and the
  release's own lag estimated from its pairs alone under a prior wide enough to allow weeks
  (OWN_LAG_PRIOR_LOG_DAYS), the other parameters held at the fit's estimate.

A release without a later vintage has no completeness of its own in the ledger: the shared lag
stands in for it, and a late tail (cases posted months later) would not show in any pair. That is
why months only one release reaches are shown as provisional (observations.provisional_months).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from milcourts.model.fit import FittedModel
from milcourts.model.likelihood import figure_expectations, figure_roles
from milcourts.model.simulate import Draws
from milcourts.model.spec import ParameterLayout

# The window whose completeness describes a release: about its last month.
LAST_DAYS = 30
# A release's own lag, estimated from its revised pairs: log-normal prior with 95% from 1 to 50 days
# (median about 7). Wide enough for the "weeks to months" the ledger's README and Mediazona's notes
# describe (court cards appear late), and wider than the model's shared prior (spec.PRIOR_LOG_TAU_DAYS,
# 0.7 to 13 days), so what this estimate finds comes from the pairs rather than from the prior.
OWN_LAG_PRIOR_LOG_DAYS = (float(np.log(50.0) / 2), float(np.log(50.0) / (2 * 1.96)))
# What a release with revised pairs adds to its row (empty for the others).
PAIR_COLUMNS = (
    "cases_first_published",
    "cases_published_later",
    "observed_share_of_later",
    "observed_share_of_later_lower_95",
    "observed_share_of_later_upper_95",
    "expected_share_of_later",
    "own_lag_days",
    "own_lag_lower_95",
    "own_lag_upper_95",
    "own_share_posted",
    "own_share_posted_lower_95",
    "own_share_posted_upper_95",
)
# Grid of the own lag (days, log-spaced): from a tenth of a day to a year.
OWN_LAG_GRID_DAYS = np.exp(np.linspace(np.log(0.1), np.log(365.0), 600))


def share_posted(days_after: np.ndarray, tau_days: np.ndarray) -> np.ndarray:
    """Share of the cases received on each of the LAST_DAYS days up to a release's last counted day
    that are posted `days_after` that day, averaged over those days: (len(tau),) for each release.

    The same exponential lag as likelihood.completeness: a case received on day d is posted by day
    s with probability 1 - exp(-(s - d)/tau)."""
    lags = np.asarray(days_after, float)[:, None] + np.arange(LAST_DAYS)[None, :]  # releases x days
    tau = np.asarray(tau_days, float)
    return 1 - np.exp(-lags[None, :, :] / tau[:, None, None]).mean(axis=2)  # len(tau) x releases


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(values, [0.025, 0.5, 0.975])
    return float(mid), float(lo), float(hi)


def _grid_quantiles(log_density: np.ndarray, grid: np.ndarray) -> tuple[float, float, float]:
    """Median and 95% interval of a density known up to a constant on a log-spaced grid, as point
    masses (the grid is fine: 600 points over 8 log units, so no quadrature rule is needed)."""
    weights = np.exp(log_density - log_density.max())
    cdf = np.cumsum(weights) / weights.sum()
    log_grid = np.log(grid)
    return tuple(float(np.exp(np.interp(p, cdf, log_grid))) for p in (0.5, 0.025, 0.975))


def own_lag_estimate(fitted: FittedModel, early: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """The lag (days) of the release of the earlier vintages `early` (indices of fit figures), from
    those pairs alone: binomial likelihood of each earlier value given the later one (as in the fit),
    with the earlier vintages' expectations under each lag of the grid and the later ones at the fit
    (`expected`, every figure's), times the wide prior. Median and 95% interval."""
    obs = fitted.obs
    later = figure_roles(obs).partner[early]
    params = np.repeat(fitted.params[None], len(OWN_LAG_GRID_DAYS), axis=0)
    params[:, ParameterLayout(len(fitted.knots)).log_tau] = np.log(OWN_LAG_GRID_DAYS)
    expected_early = figure_expectations(params, obs, fitted.observed_design())[0][:, early]
    share = np.clip(expected_early / expected[later], 1e-12, 1 - 1e-12)
    k, n = np.round(obs.value[early]), np.round(obs.value[later])
    loglik = stats.binom.logpmf(k, n, share).sum(axis=1)
    prior = stats.norm.logpdf(np.log(OWN_LAG_GRID_DAYS), *OWN_LAG_PRIOR_LOG_DAYS)
    return _grid_quantiles(loglik + prior, OWN_LAG_GRID_DAYS)


def release_completeness_table(fitted: FittedModel, draws: Draws) -> pd.DataFrame:
    """One row per release of the fitted figures (see the module's docstring)."""
    obs = fitted.obs
    figures = obs.figures[obs.figures["is_used"]].reset_index(drop=True)
    roles = figure_roles(obs)
    expected = figure_expectations(fitted.params, obs, fitted.observed_design())[0][0]
    releases = np.unique(obs.release_dates)
    last_day = np.array(
        [figures.loc[obs.release_dates == r, "period_end"].max().to_datetime64() for r in releases], "datetime64[D]"
    )
    days_after = (releases - last_day).astype(int)
    shared = share_posted(days_after, draws.tau)  # draws x releases
    records = []
    for j, release in enumerate(releases):
        own = obs.release_dates == release
        early = np.nonzero(own & roles.is_revision)[0]
        later = roles.partner[early]
        record = {
            "release_date": pd.Timestamp(release).date().isoformat(),
            "is_date_known": bool(figures.loc[own, "is_vintage_known"].all()),
            "figures": int(own.sum()),
            "last_day_counted": pd.Timestamp(last_day[j]).date().isoformat(),
            "days_after_last_day": int(days_after[j]),
            **dict(zip(("share_posted", "share_posted_lower_95", "share_posted_upper_95"), _quantiles(shared[:, j]))),
            "revised_pairs": len(early),
            "later_release_date": "",
            **dict.fromkeys(PAIR_COLUMNS, np.nan),  # filled below where the release has pairs
        }
        if len(early):
            k, n = int(np.round(obs.value[early]).sum()), int(np.round(obs.value[later]).sum())
            interval = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
            lag = own_lag_estimate(fitted, early, expected)
            own_share = share_posted(np.array([days_after[j]]), np.array(lag))[:, 0]
            record.update(
                later_release_date=", ".join(
                    sorted({pd.Timestamp(d).date().isoformat() for d in obs.release_dates[later]})
                ),
                cases_first_published=k,
                cases_published_later=n,
                observed_share_of_later=k / n,
                observed_share_of_later_lower_95=interval.low,
                observed_share_of_later_upper_95=interval.high,
                expected_share_of_later=float(expected[early].sum() / expected[later].sum()),
                own_lag_days=lag[0],
                own_lag_lower_95=lag[1],
                own_lag_upper_95=lag[2],
                # a longer lag posts less: the interval's ends swap
                own_share_posted=own_share[0],
                own_share_posted_lower_95=own_share[2],
                own_share_posted_upper_95=own_share[1],
            )
        records.append(record)
    return pd.DataFrame.from_records(records)
