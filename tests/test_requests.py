"""Help requests: disjoint windows, the aggregated Poisson trend, filings growth and the lag comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from milcourts.model.requests import (
    AggregatedPoisson,
    TooFewRequestFigures,
    disjoint_windows,
    filings_growth_percent,
    fit_log_linear,
    fit_requests_trend,
    lag_comparison,
    request_figures,
    trend_design,
)


def _figures(rows):
    frame = pd.DataFrame(rows, columns=["figure_id", "period_start", "period_end", "value"])
    frame["period_start"] = pd.to_datetime(frame["period_start"])
    frame["period_end"] = pd.to_datetime(frame["period_end"])
    frame["value"] = frame["value"].astype(float)
    return frame


def _ledger(rows, measure="count", qualifier="exact"):
    frame = _figures(rows)
    frame["series"] = "help_requests"
    frame["measure"] = measure
    frame["value_qualifier"] = qualifier
    return frame


def test_nested_windows_become_disjoint_as_in_the_ledger():
    # The Moscow Times, 5 Dec 2023: 305 in Jun-Aug with 54 in June; 577 in Sep-Nov with 218 in
    # October and 175 in November. September alone: 577 - 218 - 175 = 184.
    windows = disjoint_windows(
        _figures(
            [
                ("F002", "2023-06-01", "2023-08-31", 305),
                ("F005", "2023-06-01", "2023-06-30", 54),
                ("F001", "2023-09-01", "2023-11-30", 577),
                ("F004", "2023-10-01", "2023-10-31", 218),
                ("F006", "2023-11-01", "2023-11-30", 175),
            ]
        )
    )
    assert windows.label == ["2023-06", "2023-07 to 2023-08", "2023-09", "2023-10", "2023-11"]
    assert list(windows.value) == [54, 251, 184, 218, 175]
    assert windows.derivation == ["F005", "F002 − F005", "F001 − F004 − F006", "F004", "F006"]
    assert np.allclose(windows.weights.sum(axis=0), 1.0)  # every month counted exactly once


def test_a_window_with_a_hole_keeps_its_months_apart():
    windows = disjoint_windows(_figures([("A", "2023-01-01", "2023-03-31", 30), ("B", "2023-02-01", "2023-02-28", 8)]))
    assert windows.label == ["2023-01 to 2023-03 (2 months)", "2023-02"]
    assert list(windows.weights[0]) == [1, 0, 1]


def test_overlaps_that_cannot_be_split_and_parts_above_the_whole_are_errors():
    with pytest.raises(ValueError, match="A and B overlap without one containing the other"):
        disjoint_windows(_figures([("A", "2023-01-01", "2023-02-28", 10), ("B", "2023-02-01", "2023-03-31", 10)]))
    with pytest.raises(ValueError, match="figure B is smaller than the figures it contains \\(A\\)"):
        disjoint_windows(_figures([("A", "2023-01-01", "2023-01-31", 50), ("B", "2023-01-01", "2023-03-31", 40)]))


def test_only_exact_counts_are_used_and_the_reason_is_given():
    ledger = pd.concat(
        [
            _ledger([("F1", "2023-01-01", "2023-01-31", 28)]),
            _ledger([("F2", "2022-09-21", "2024-03-04", 2086)], measure="cumulative"),
            _ledger([("F3", "2023-02-01", "2023-02-28", 40)], qualifier="at_least"),
        ]
    )
    figures = request_figures(ledger).set_index("figure_id")
    assert figures.loc["F1", "is_used"]
    assert figures.loc["F2", "reason_unused"] == "not a count of requests in a window (cumulative)"
    assert figures.loc["F3", "reason_unused"] == "not an exact count"
    with pytest.raises(TooFewRequestFigures, match="1 usable help-request counts; a trend needs at least 3"):
        fit_requests_trend(ledger)


def test_the_trend_recovers_a_known_growth_rate_from_window_totals():
    """Windows of a rate growing 15% a month, published as exact expected totals (large, so that
    rounding is negligible): the fit returns 15% and its interval covers it."""
    months = pd.period_range("2023-01", "2023-12", freq="M")
    rate = 40 * 1.15 ** np.arange(12) * 10
    rows = [
        ("M1", "2023-01-01", "2023-01-31", round(rate[0])),
        ("Q2", "2023-04-01", "2023-06-30", round(rate[3:6].sum())),
        ("M8", "2023-08-01", "2023-08-31", round(rate[7])),
        ("S", "2023-09-01", "2023-12-31", round(rate[8:].sum())),
        ("M10", "2023-10-01", "2023-10-31", round(rate[9])),
    ]
    trend = fit_requests_trend(_ledger(rows))
    assert list(trend.windows.months) == list(months)
    growth, lo, hi = trend.growth_percent()
    assert growth == pytest.approx(15.0, abs=0.05)
    assert lo <= 15.0 <= hi


def test_filings_growth_is_the_slope_of_log_expected_counts_per_draw():
    months = pd.period_range("2023-01", "2023-12", freq="M")
    growth = np.array([0.05, 0.10, 0.15])[:, None]
    draws = 100 * (1 + growth) ** np.arange(12)[None, :]
    median, lo, hi = filings_growth_percent(draws, months, pd.Period("2023-03", "M"), pd.Period("2023-09", "M"))
    assert (median, lo, hi) == pytest.approx((10.0, 5.25, 14.75))


def test_the_lag_comparison_finds_the_lag_the_data_were_made_with():
    """Requests proportional to filings four months later (filings with a bump, so lags differ)."""
    months = pd.period_range("2022-06", "2024-06", freq="M")
    t = np.arange(len(months))
    filings = pd.Series(100 + 400 * np.exp(-0.5 * ((t - 12) / 3) ** 2) + 5 * t, index=months)
    request_months = pd.period_range("2023-01", "2023-12", freq="M")
    expected = 0.5 * filings.loc[request_months + 4].to_numpy()
    rows = [
        (f"R{i}", m.start_time.strftime("%Y-%m-%d"), m.end_time.strftime("%Y-%m-%d"), round(v))
        for i, (m, v) in enumerate(zip(request_months, expected))
    ]
    windows = disjoint_windows(_figures(rows))
    # draws of the court model: the same shape with multiplicative noise on the level only, so
    # every draw still makes the lag of four months the best
    rng = np.random.default_rng(1)
    draws = pd.DataFrame(np.outer(np.exp(rng.normal(0, 0.2, 20)), filings.to_numpy()), columns=months)
    table = lag_comparison(windows, filings, max_lag_months=6, filings_draws=draws)
    best = table.loc[table["is_best"]].iloc[0]
    assert best["lag_months"] == 4
    assert best["elasticity"] == pytest.approx(1.0, abs=0.02)
    assert best["share_of_draws_best"] == 1.0 and table["share_of_draws_best"].sum() == pytest.approx(1.0)
    assert not table.loc[table["lag_months"] == 0, "is_in_95_set"].iloc[0]
    with pytest.raises(ValueError, match="court filings are not modelled for 2024-07, needed at a lag of 7 months"):
        lag_comparison(windows, filings.loc[:"2024-06"], max_lag_months=7)


def test_quasi_poisson_intervals_widen_with_overdispersion():
    windows = disjoint_windows(
        _figures(
            [
                (f"M{i}", f"2023-{i:02d}-01", pd.Period(f"2023-{i:02d}", "M").end_time.strftime("%Y-%m-%d"), v)
                for i, v in zip(range(1, 7), (50, 90, 60, 120, 70, 140))
            ]
        )
    )
    fit = fit_log_linear(windows, trend_design(windows.months))
    assert fit.scale > 1
    plain = fit.cov / fit.scale
    assert fit.cov[1, 1] == pytest.approx(plain[1, 1] * fit.scale)


def test_the_aggregated_poisson_derivatives_are_exact():
    """The score and Hessian Newton uses, against central differences of the log-likelihood on
    windows of one to four months with a hole; and on windows of one month each the model is a
    Poisson regression, so statsmodels' GLM gives the same estimates and covariance."""
    rng = np.random.default_rng(7)
    months = 12
    design = np.column_stack([np.ones(months), np.linspace(-1, 1, months), rng.normal(size=months)])
    weights = np.zeros((5, months))
    for row, covered in enumerate(([0], [1, 2, 3], [4, 6], [5, 7, 8, 9], [10, 11])):
        weights[row, covered] = 1.0
    model = AggregatedPoisson(np.array([30.0, 95.0, 80.0, 170.0, 61.0]), design, weights)
    params = np.array([3.4, 0.3, -0.1])
    assert model.score(params) == pytest.approx(approx_fprime(params, model.loglike, centered=True), rel=1e-6)
    assert model.hessian(params) == pytest.approx(approx_hess3(params, model.loglike), rel=1e-4)

    counts = rng.poisson(np.exp(design @ np.array([3.0, 0.5, 0.2]))).astype(float)
    single = AggregatedPoisson(counts, design, np.eye(months)).fit(method="newton", disp=False)
    glm = sm.GLM(counts, design, family=sm.families.Poisson()).fit()
    assert single.params == pytest.approx(glm.params, rel=1e-8)
    assert single.cov_params() == pytest.approx(glm.cov_params(), rel=1e-6)
