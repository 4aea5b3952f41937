"""Requests for help to desert received by Idite Lesom ("Get Lost"), set against court filings.

The project publishes its own counts, irregularly: a few single months, two three-month totals
that contain some of those months, and running totals on other definitions. The monthly series is
modelled like the court filings, by fitting to the published windows directly, but with a model
small enough for seven numbers: a log-linear trend, Poisson on the windows with the standard
errors scaled by Pearson's chi-square (quasi-Poisson), statsmodels' GenericLikelihoodModel.

Overlapping windows would count the same requests twice in the likelihood, so nested figures are
first turned into disjoint ones (a three-month total minus the single months it contains).
Running totals (a different definition: "desertion and illegal border crossing"), shares and
counts of people helped (an outcome, not a request) are not requests per month and are left out,
with the reason stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.base.model import GenericLikelihoodModel

from milcourts.inputs.constraints import month_weights

HELP_SERIES = "help_requests"
MIN_REQUEST_FIGURES = 3  # a trend with an interval needs at least one residual degree of freedom


class TooFewRequestFigures(ValueError):
    """The ledger has too few request counts for a trend; reports say so instead of failing."""


def request_figures(ledger: pd.DataFrame) -> pd.DataFrame:
    """The help-request figures, each with whether it is used and, if not, why."""
    figures = ledger[ledger["series"] == HELP_SERIES].copy()
    reasons = pd.Series("", index=figures.index)
    reasons[figures["measure"] != "count"] = "not a count of requests in a window (" + figures["measure"] + ")"
    reasons[(reasons == "") & (figures["value_qualifier"] != "exact")] = "not an exact count"
    reasons[(reasons == "") & (figures["period_start"].isna() | figures["period_end"].isna())] = "period unknown"
    figures["is_used"] = reasons == ""
    figures["reason_unused"] = reasons
    return figures.sort_values(["period_start", "period_end", "figure_id"]).reset_index(drop=True)


@dataclass
class DisjointWindows:
    """Published request counts made disjoint: row i counts value[i] requests over the months
    where weights[i] is positive; `derivation` says how it was obtained from ledger figures."""

    months: pd.PeriodIndex
    weights: np.ndarray
    value: np.ndarray
    label: list[str]
    derivation: list[str]


def disjoint_windows(used: pd.DataFrame) -> DisjointWindows:
    """Subtract each figure's nested figures from it, smallest windows first.

    A window that only partly overlaps another cannot be split this way; that is an error (none
    in the ledger), because fitting both would count the overlap twice.
    """
    first = used["period_start"].min().to_period("M")
    last = used["period_end"].max().to_period("M")
    months = pd.period_range(first, last, freq="M")
    rows = []
    for r in used.itertuples():
        shares = month_weights(r.period_start, r.period_end)
        rows.append(
            {
                "id": r.figure_id,
                "weights": np.array([shares.get(m, 0.0) for m in months]),
                "value": float(r.value),
                "span": int((r.period_end - r.period_start).days),
            }
        )
    rows.sort(key=lambda row: row["span"])
    for i, big in enumerate(rows):
        inside = []
        for small in rows[:i]:
            overlap = np.minimum(big["weights"], small["weights"])
            if not overlap.any():
                continue
            if not np.allclose(overlap, small["weights"]):
                raise ValueError(
                    f"help-request figures {small['id']} and {big['id']} overlap without one "
                    "containing the other; they cannot be made disjoint"
                )
            inside.append(small)
        inside.sort(key=lambda small: int(np.argmax(small["weights"] > 0)))  # named in calendar order
        for small in inside:
            big["weights"] = big["weights"] - small["weights"]
            big["value"] -= small["value"]
        big["derivation"] = big["id"] + "".join(f" − {s['id']}" for s in inside)
        if big["value"] < 0:
            raise ValueError(
                f"help-request figure {big['id']} is smaller than the figures it contains "
                f"({', '.join(s['id'] for s in inside)})"
            )
    rows.sort(key=lambda row: int(np.argmax(row["weights"] > 0)))
    labels = []
    for row in rows:
        covered = months[row["weights"] > 0]
        labels.append(
            str(covered[0])
            if len(covered) == 1
            else f"{covered[0]} to {covered[-1]}"
            + ("" if len(covered) == covered[-1].ordinal - covered[0].ordinal + 1 else f" ({len(covered)} months)")
        )
    return DisjointWindows(
        months=months,
        weights=np.array([r["weights"] for r in rows]),
        value=np.array([r["value"] for r in rows]),
        label=labels,
        derivation=[r["derivation"] for r in rows],
    )


class AggregatedPoisson(GenericLikelihoodModel):
    """y_j ~ Poisson(sum_t W[j, t] exp(X[t] b)): a log-linear monthly rate seen only through window
    totals (the composite link model of Thompson and Baker, in its smallest form)."""

    def __init__(self, endog, month_design, weights, **kwargs):
        self.month_design = np.asarray(month_design, float)
        self.weights = np.asarray(weights, float)
        # exog is only bookkeeping for statsmodels (parameter count, names): the windows' designs
        super().__init__(endog, exog=self.weights @ self.month_design, **kwargs)
        self.k_constant = 1  # the first column is the log-scale intercept (in exog it is window length)
        self.df_model = self.month_design.shape[1] - 1

    def expected(self, params) -> np.ndarray:
        return self.weights @ np.exp(self.month_design @ params)

    def loglikeobs(self, params):
        return stats.poisson.logpmf(self.endog, self.expected(params))

    def score(self, params):
        rate = np.exp(self.month_design @ params)
        expected = self.weights @ rate
        return ((self.endog / expected - 1.0)[:, None] * (self.weights @ (rate[:, None] * self.month_design))).sum(0)

    def hessian(self, params):
        """Exact: without it statsmodels differentiates the log-likelihood numerically, about 80
        evaluations per Newton step, and the summary's lag comparison (about 700 fits) took 6 s.

        With mu = W exp(X b) and G = W diag(rate) X (d mu / d b):
        X' diag(rate * W'(y / mu - 1)) X - G' diag(y / mu^2) G."""
        rate = np.exp(self.month_design @ params)
        expected = self.weights @ rate
        jacobian = self.weights @ (rate[:, None] * self.month_design)  # G
        month_weight = rate * (self.weights.T @ (self.endog / expected - 1.0))
        curvature = self.month_design.T @ (month_weight[:, None] * self.month_design)
        return curvature - jacobian.T @ ((self.endog / expected**2)[:, None] * jacobian)


@dataclass
class LogLinearFit:
    """A fitted aggregated Poisson model with quasi-Poisson (Pearson-scaled) covariance."""

    params: np.ndarray
    cov: np.ndarray
    scale: float  # Pearson chi-square / residual df, floored at 1
    df_resid: int
    deviance: float
    expected: np.ndarray  # per disjoint window

    def interval(self, index: int, level: float = 0.95) -> tuple[float, float, float]:
        """Estimate and interval of one coefficient: t with the residual df, as for quasi-Poisson."""
        half = stats.t.ppf(0.5 + level / 2, self.df_resid) * np.sqrt(self.cov[index, index])
        return float(self.params[index]), float(self.params[index] - half), float(self.params[index] + half)


def fit_log_linear(windows: DisjointWindows, month_design: np.ndarray) -> LogLinearFit:
    """Fit log rate = month_design @ b to the windows; start from a flat rate at the mean."""
    model = AggregatedPoisson(windows.value, month_design, windows.weights)
    start = np.zeros(month_design.shape[1])
    start[0] = np.log(windows.value.sum() / windows.weights.sum())
    result = model.fit(start_params=start, method="newton", maxiter=200, disp=False)
    expected = model.expected(result.params)
    df_resid = len(windows.value) - len(result.params)
    pearson = float(((windows.value - expected) ** 2 / expected).sum())
    scale = max(1.0, pearson / df_resid) if df_resid > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        deviance = float(
            2
            * np.sum(
                np.where(windows.value > 0, windows.value * np.log(windows.value / expected), 0.0)
                - (windows.value - expected)
            )
        )
    return LogLinearFit(
        params=np.asarray(result.params),
        cov=np.asarray(result.cov_params()) * scale,
        scale=scale,
        df_resid=df_resid,
        deviance=deviance,
        expected=expected,
    )


def trend_design(months: pd.PeriodIndex) -> np.ndarray:
    """Intercept at the middle month, slope per month."""
    t = np.arange(len(months), dtype=float)
    return np.column_stack([np.ones(len(months)), t - t.mean()])


@dataclass
class RequestsTrend:
    figures: pd.DataFrame  # every help-request figure, used or not
    windows: DisjointWindows
    fit: LogLinearFit

    def growth_percent(self) -> tuple[float, float, float]:
        """Monthly growth of requests with its 95% CI (quasi-Poisson, t-based)."""
        return tuple(100 * np.expm1(v) for v in self.fit.interval(1))

    def monthly(self) -> pd.DataFrame:
        """The fitted monthly trend with a 95% confidence band for the mean (not a prediction band:
        the published months scatter around it, as the chart shows)."""
        design = trend_design(self.windows.months)
        log_rate = design @ self.fit.params
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, self.fit.cov, design))
        t = stats.t.ppf(0.975, self.fit.df_resid)
        return pd.DataFrame(
            {
                "month": self.windows.months.astype(str),
                "expected": np.exp(log_rate),
                "lower_95": np.exp(log_rate - t * se),
                "upper_95": np.exp(log_rate + t * se),
            }
        )


def fit_requests_trend(ledger: pd.DataFrame) -> RequestsTrend:
    figures = request_figures(ledger)
    used = figures[figures["is_used"]]
    if len(used) < MIN_REQUEST_FIGURES:
        raise TooFewRequestFigures(
            f"the ledger has {len(used)} usable help-request counts; a trend needs at least {MIN_REQUEST_FIGURES}"
        )
    windows = disjoint_windows(used)
    return RequestsTrend(figures=figures, windows=windows, fit=fit_log_linear(windows, trend_design(windows.months)))


def filings_growth_percent(
    monthly_expected: np.ndarray, months: pd.PeriodIndex, first: pd.Period, last: pd.Period
) -> tuple[float, float, float]:
    """Average monthly growth of court filings over [first, last]: the least-squares slope of the
    log expected monthly count, per draw (draws x months), so that its interval carries the model's
    uncertainty; median and 2.5/97.5% quantiles."""
    window = (months >= first) & (months <= last)
    t = np.arange(window.sum(), dtype=float)
    t -= t.mean()
    slopes = np.log(monthly_expected[:, window]) @ t / (t @ t)
    q = np.quantile(100 * np.expm1(slopes), [0.5, 0.025, 0.975])
    return float(q[0]), float(q[1]), float(q[2])


def _lag_positions(windows: DisjointWindows, months: pd.PeriodIndex, lag: int) -> np.ndarray:
    """Where the windows' months, `lag` months later, stand among the modelled `months`."""
    shifted = windows.months + lag
    positions = pd.PeriodIndex(months).get_indexer(shifted)
    if (positions < 0).any():
        missing = shifted[positions < 0][0]
        raise ValueError(f"court filings are not modelled for {missing}, needed at a lag of {lag} months")
    return positions


def _lag_fit(windows: DisjointWindows, log_filings: np.ndarray) -> LogLinearFit:
    """Log requests = c + e * log filings, with the filings already taken at the lagged months."""
    return fit_log_linear(windows, np.column_stack([np.ones(len(log_filings)), log_filings - log_filings.mean()]))


def lag_comparison(
    windows: DisjointWindows,
    filings_expected: pd.Series,
    max_lag_months: int,
    filings_draws: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """How well court filings k months later track the requests, k = 0..max_lag_months.

    For each lag: log requests_t = c + e * log filings_(t+k), fitted to the disjoint windows as
    above (e: the elasticity, 1 = proportional). Lags are compared by deviance; the set of lags
    whose deviance is within the chi-square(1) 95% point, times the quasi-Poisson scale of the best
    lag, of the lowest is the profile-likelihood 95% set for the lag. That set takes the filings
    at their posterior mean; `filings_draws` (draws x months) adds how often each lag is the best
    when the comparison is repeated on draws of the court model, which carries its uncertainty.
    """
    rows = []
    log_expected = np.log(filings_expected.to_numpy(float))
    for lag in range(max_lag_months + 1):
        fit = _lag_fit(windows, log_expected[_lag_positions(windows, filings_expected.index, lag)])
        elasticity, lo, hi = fit.interval(1)
        rows.append(
            {
                "lag_months": lag,
                "deviance": fit.deviance,
                "scale": fit.scale,
                "elasticity": elasticity,
                "elasticity_lower_95": lo,
                "elasticity_upper_95": hi,
            }
        )
    table = pd.DataFrame(rows)
    best = table["deviance"].idxmin()
    threshold = stats.chi2.ppf(0.95, 1) * table.loc[best, "scale"]
    table["deviance_above_best"] = table["deviance"] - table.loc[best, "deviance"]
    table["is_best"] = table.index == best
    table["is_in_95_set"] = table["deviance_above_best"] <= threshold
    if filings_draws is not None:
        log_draws = np.log(filings_draws.to_numpy(float))
        positions = [_lag_positions(windows, filings_draws.columns, lag) for lag in table["lag_months"]]
        wins = np.zeros(len(table))
        for draw in log_draws:
            deviances = [_lag_fit(windows, draw[at]).deviance for at in positions]
            wins[int(np.argmin(deviances))] += 1
        table["share_of_draws_best"] = wins / len(filings_draws)
    return table
