"""The full-posterior check: interval comparison by hand, the whitened density, and the sampler
recovering a posterior that the Laplace approximation already describes well."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from milcourts.checks.posterior import (
    PosteriorSample,
    _whitened_log_density,
    compare_intervals,
    run_posterior_check,
    sample_posterior,
)
from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.inputs.constraints import build_constraint_view
from milcourts.model.fit import _objective, fit_filings_model
from milcourts.model.observations import design_matrix, month_index
from milcourts.model.simulate import simulate
from milcourts.model.spec import ModelSpec, phi_prior


def _quantities(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": "effect",
            "article": "337",
            "quantity": [r[0] for r in rows],
            "estimate": [r[1] for r in rows],
            "lower_95": [r[2] for r in rows],
            "upper_95": [r[3] for r in rows],
            "is_estimable": True,
        }
    )


def test_rate_ratios_compared_on_the_log_scale_everything_else_linearly():
    laplace = _quantities([("rate ratio", 2.0, 1.0, 4.0), ("growth", 1.0, -2.0, 4.0), ("cases", 10, 5, 20)])
    posterior = _quantities([("rate ratio", 2.0, 0.5, 8.0), ("growth", 1.0, -2.3, 4.3), ("cases", 10, 5, 35)])
    table = compare_intervals(laplace, posterior).set_index("quantity").rename(index={"rate ratio": "ratio"})
    # ratio: log widths log(16) against log(4); each end moved by half the approximation's width
    assert table.loc["ratio", "width_ratio"] == pytest.approx(2.0)
    assert table.loc["ratio", "lower_shift_in_widths"] == pytest.approx(-0.5)
    assert table.loc["ratio", "upper_shift_in_widths"] == pytest.approx(0.5)
    assert table.loc["ratio", "verdict"] == "differs"
    # growth (crosses zero): linear widths 6.6 against 6, ends moved by 0.05 of the width: agree
    assert table.loc["growth", "width_ratio"] == pytest.approx(1.1)
    assert table.loc["growth", "lower_shift_in_widths"] == pytest.approx(-0.05)
    assert table.loc["growth", "verdict"] == "agrees"
    assert not table.loc["growth", "log_scale"] and table.loc["ratio", "log_scale"]
    # counts on their own scale, as a reader compares them: 5 to 35 is twice as wide as 5 to 20
    assert table.loc["cases", "width_ratio"] == pytest.approx(2.0) and not table.loc["cases", "log_scale"]


def test_a_shift_within_its_monte_carlo_error_of_the_threshold_is_too_close_to_call():
    nan = float("nan")
    laplace = _quantities([("a", 10, 0, 10), ("b", 10, 0, 10), ("c", 10, 0, 10), ("d", 10, 0, 10), ("e", 1, nan, nan)])
    # lower ends moved by 0.05, 0.09, 0.12 and 0.30 of the width; e has no interval (a correlation)
    posterior = _quantities(
        [("a", 10, 0.5, 10), ("b", 10, 0.9, 10), ("c", 10, 1.2, 10), ("d", 10, 3.0, 10), ("e", 1, nan, nan)]
    )
    errors = laplace[["kind", "article", "quantity"]].assign(lower_95_se=0.1, upper_95_se=0.0)
    # without errors: two agree, two differ
    bare = compare_intervals(laplace, posterior).set_index("quantity")
    assert bare["verdict"].tolist()[:4] == ["agrees", "agrees", "differs", "differs"]
    assert pd.isna(bare.loc["e", "verdict"])
    assert (bare.loc[list("abcd"), ["lower_shift_se", "upper_shift_se"]] == 0).all().all()
    # each sample's lower end uncertain by 0.1 (0.01 of the width): the shift's error is 0.0141 of the
    # width, and within two of them of 0.1 is too close to call (0.09 and 0.12 of the width)
    table = compare_intervals(laplace, posterior, errors, errors).set_index("quantity")
    assert table["lower_shift_se"].tolist()[:4] == pytest.approx([0.01 * np.sqrt(2)] * 4)
    assert table["verdict"].tolist()[:4] == ["agrees", "too close to call", "too close to call", "differs"]
    assert pd.isna(table.loc["e", "verdict"])


def test_endpoint_errors_match_how_far_independent_samples_scatter(synthetic_fit):
    """Batch means: the standard error of an effect's interval ends from one sample of 1,000 draws
    is about the standard deviation of those ends over independent samples of 1,000 (eight seeds;
    measured: 0.91 of it in the median, 0.55 to 1.66 from the 10th to the 90th percentile)."""
    from milcourts.checks.posterior import _compared_quantities, endpoint_errors

    errors = endpoint_errors(synthetic_fit, simulate(synthetic_fit, n_draws=1000, seed=100), 4)
    ends = pd.concat(
        [_compared_quantities(synthetic_fit, simulate(synthetic_fit, n_draws=1000, seed=s)) for s in range(8)]
    )
    effects = ends[(ends["kind"] == "effect") & ~ends["quantity"].str.contains("rate ratio")].dropna(
        subset=["lower_95", "upper_95"]
    )  # rate ratios' errors are on the log scale; a correlation has no interval
    scatter = effects.groupby(["article", "quantity"], sort=False)[["lower_95", "upper_95"]].std()
    estimated = errors.set_index(["article", "quantity"]).loc[scatter.index, ["lower_95_se", "upper_95_se"]]
    ratio = np.median(estimated.to_numpy() / scatter.to_numpy())
    assert 0.6 < ratio < 1.5, ratio


def test_diagnostics_tell_mixed_chains_from_chains_stuck_apart():
    """Four chains of independent normal draws: R-hat about 1, as many effective draws as draws;
    one chain shifted by two standard deviations in one parameter: R-hat far above 1.01 there."""
    draws = np.random.default_rng(3).standard_normal((4, 1000, 3))
    mixed = PosteriorSample(draws, warmup=0, divergences=0, seconds=0.0).diagnostics()
    assert list(mixed.columns) == ["rhat", "ess_bulk", "ess_tail"]
    assert (mixed["rhat"] < 1.01).all()
    assert mixed["ess_bulk"].between(3000, 5000).all() and mixed["ess_tail"].between(3000, 5000).all()
    draws[0, :, 1] += 2.0
    stuck = PosteriorSample(draws, warmup=0, divergences=0, seconds=0.0).diagnostics()
    assert stuck.loc[1, "rhat"] > 1.1 and (stuck.loc[[0, 2], "rhat"] < 1.01).all()
    assert stuck.loc[1, "ess_bulk"] < 1000


@pytest.fixture(scope="module")
def synthetic_fit():
    """A fit to a ledger simulated from a known series, with many figures: close to normal."""
    truth = default_truth()
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(11)), aggregate_pattern())
    return fit_filings_model(build_constraint_view(ledger), ModelSpec(penalty_grid=(1.0,), n_draws=400))


def test_whitened_density_is_the_fit_objective_and_flat_at_the_mode(synthetic_fit):
    import jax

    log_density, chol = _whitened_log_density(synthetic_fit)
    obs = synthetic_fit.obs
    design = design_matrix(
        len(obs.months), month_index(obs.months, synthetic_fit.spec.break_month), synthetic_fit.knots
    )
    objective = _objective(obs, design, synthetic_fit.penalty, phi_prior(synthetic_fit.spec.likelihood))
    zero = np.zeros(len(synthetic_fit.params))
    value, gradient = jax.jit(jax.value_and_grad(log_density))(zero)  # one compilation for both
    assert float(value) == pytest.approx(-objective(synthetic_fit.params), abs=1e-9)
    # the optimum in whitened coordinates: gradient L' g, which vanishes with g
    assert np.abs(np.asarray(gradient)).max() < 1e-4
    np.testing.assert_allclose(chol @ chol.T, synthetic_fit.cov, atol=1e-10)


@pytest.fixture(scope="module")
def sample(synthetic_fit):
    """Three short chains in this process (the sampler compiles once for the module's tests). With
    150 adaptation steps one of the 900 draws diverged once the fit's covariance changed in its last
    digits; 200 leave none."""
    return sample_posterior(synthetic_fit, chains=3, warmup=200, draws=300, seed=5)


def test_sampler_recovers_the_laplace_spread_where_the_posterior_is_nearly_normal(synthetic_fit, sample):
    assert sample.params.shape == (3, 300, len(synthetic_fit.params))
    assert sample.divergences == 0
    flat = sample.params.reshape(-1, sample.params.shape[-1])
    sd = np.sqrt(np.diag(synthetic_fit.cov))
    names = synthetic_fit.names
    # the trend terms of the article with most figures: the figures pin them down, so the full
    # posterior and its normal approximation should agree closely (a whitening that mis-scaled
    # the draws would not)
    for name in ("337:intercept", "337:step"):
        i = names.index(name)
        assert flat[:, i].std() / sd[i] == pytest.approx(1.0, abs=0.3), name
        assert abs(np.median(flat[:, i]) - synthetic_fit.params[i]) < 0.5 * sd[i], name
    check = run_posterior_check(synthetic_fit, simulate(synthetic_fit), sample)
    assert set(check) == {"summary", "intervals", "parameters"}
    step = check["intervals"].set_index("quantity").loc["level rate ratio at the break"].iloc[0]
    assert step["width_ratio"] == pytest.approx(1.0, abs=0.35)


def test_page_one_names_the_sampled_interval_only_when_it_differs_materially():
    from types import SimpleNamespace

    from milcourts.views.trend import sampled_interval

    laplace = pd.concat(
        [
            _quantities([("level rate ratio at the break", 1.8, 1.12, 3.03)]).assign(article="337"),
            _quantities([("excess cases 2022-10 to 2024-12", 607.0, 454.0, 748.0)]).assign(article="338"),
            _quantities([("excess cases 2022-10 to 2024-12", 12240.0, 10066.0, 13944.0)]).assign(article="337"),
        ]
    )
    posterior = pd.concat(
        [
            _quantities([("level rate ratio at the break", 1.7, 0.82, 3.21)]).assign(article="337"),
            _quantities([("excess cases 2022-10 to 2024-12", 607.0, 428.0, 781.0)]).assign(article="338"),
            _quantities([("excess cases 2022-10 to 2024-12", 12071.0, 7208.0, 14540.0)]).assign(article="337"),
        ]
    )
    products = SimpleNamespace(tables={"posterior_intervals": compare_intervals(laplace, posterior)})
    # the jump: only the sampled interval includes no change (and it is more than a quarter wider)
    assert sampled_interval(products, "337", "level rate ratio at the break") == (1.7, 0.82, 3.21)
    # desertion's extra cases: ends moved by a tenth of the width, 1.2 times as wide: methods report only
    assert sampled_interval(products, "338", "excess cases") is None
    # AWOL's extra cases: twice as wide
    assert sampled_interval(products, "337", "excess cases") == (12071.0, 7208.0, 14540.0)
    assert sampled_interval(SimpleNamespace(tables={}), "337", "excess cases") is None
    # an effect the reports do not state (identification rule) gets no sampled number either
    hidden = compare_intervals(laplace.assign(is_estimable=False), posterior)
    assert sampled_interval(SimpleNamespace(tables={"posterior_intervals": hidden}), "337", "excess cases") is None


def test_table_captions_list_the_effects_whose_sampled_range_page_one_gives():
    from types import SimpleNamespace

    from milcourts.views.trend import sampled_notes

    laplace = _quantities([("level rate ratio at the break", 1.8, 1.12, 3.03)]).assign(article="337")
    posterior = _quantities([("level rate ratio at the break", 1.7, 0.82, 3.21)]).assign(article="337")
    products = SimpleNamespace(tables={"posterior_intervals": compare_intervals(laplace, posterior)})
    assert sampled_notes(products, ["337", "338"]) == [("the jump at the break for AWOL (Art. 337)", "0.8 to 3.2")]


def test_chains_shared_with_a_worker_process_are_the_chains_one_process_draws(synthetic_fit, sample):
    """The build's serial stage shares the check's chains between two processes: each chain's key,
    and so its draws, must not depend on which process ran it (here chains 0 and 2 in this process,
    1 in the worker, against the three drawn in this process alone)."""
    shared = sample_posterior(synthetic_fit, chains=3, warmup=200, draws=300, seed=5, workers=2)
    np.testing.assert_array_equal(shared.params, sample.params)
    assert shared.divergences == sample.divergences
    assert not np.array_equal(sample.params[0], sample.params[1])  # the chains are not one chain thrice
