"""Full-posterior check of the Laplace intervals: NUTS on the very density the fit maximises.

Every interval in the reports comes from the Laplace approximation: a normal distribution centred
at the penalised optimum with the inverse Hessian as covariance. Where the posterior is skewed
(variance parameters, effects near the edge of what the figures pin down) that can be too narrow
or off-centre. Here the same penalised log-density (model.derivatives, the penalty fixed at the
one the fit chose) is sampled by the No-U-Turn sampler (blackjax): four chains from dispersed
starts, step size and a diagonal mass matrix adapted in a warm-up that is discarded, split R-hat
(rank-normalised, Vehtari et al. 2021) and effective sample sizes checked. The draws then go
through the same tables as the Laplace draws (model.tables), and each quantity's two intervals
are set side by side.

The sampler runs in coordinates whitened by the Laplace covariance (theta = mode + L z): if the
approximation were exact, z would be standard normal and every direction equally easy; the
adapted mass matrix corrects what it is not. It runs once per build, with the main fit's other
checks (products.stage): about a minute of sampling, too long for `make validate`'s goal, and this
way the methods report always shows the check of the very fit the reports use.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from milcourts.model.fit import FittedModel, _objective
from milcourts.model.observations import month_index
from milcourts.model.runtime import model_numerics, process_pool, stop_now
from milcourts.model.simulate import Draws, simulate
from milcourts.model.spec import phi_prior
from milcourts.model.tables import effects_table, monthly_filings_table, yearly_totals_table
from milcourts.vocabulary import ARTICLES

CHAINS = 4
WARMUP_STEPS = 500  # per chain, discarded: step size and mass matrix adaptation
DRAWS_PER_CHAIN = 1000
SEED = 20220921  # the day mobilisation was announced
# Convergence: the thresholds of Vehtari et al. (2021).
MAX_RHAT = 1.01
MIN_ESS = 400
TAIL_QUANTILES = (0.05, 0.95)  # the tail effective sample size is the smaller of these two quantiles
# Two 95% intervals "agree" when each end differs by less than this share of the Laplace
# interval's width (on the log scale for rate ratios, where 1 to 3 is as wide as 2 to 6; counts,
# growth rates and shares on their own scale). The Monte Carlo error of a 2.5% quantile from a few
# thousand draws is about 3-5% of the width.
AGREEMENT_SHARE = 0.1
# ...but that error decides the verdict for quantities whose ends moved by about a tenth (a third
# of them on the project's ledger: with another, equally valid random stream, 5 of 65 verdicts
# changed). So each end's shift carries its Monte Carlo standard error, from batch means: every
# chain cut into POSTERIOR_BATCHES_PER_CHAIN consecutive runs of draws and the Laplace draws into
# LAPLACE_BATCHES, each batch's interval ends read off as the full sample's are; the standard
# deviation of a batch's end over the root of the number of batches is the error of the full
# sample's end. A range "agrees" when each end is within AGREEMENT_SHARE even MONTE_CARLO_Z errors
# away from its estimated shift, "differs" when an end is beyond it by as much, and is "too close
# to call" at this many draws otherwise.
POSTERIOR_BATCHES_PER_CHAIN = 2
LAPLACE_BATCHES = 4
MONTE_CARLO_Z = 2.0
AGREES, DIFFERS, TOO_CLOSE = "agrees", "differs", "too close to call"
# Monthly values compared: every this many months from the break, within the modelled months.
MONTH_STRIDE = 12
RATIO_QUANTITY = "rate ratio"  # quantities compared on the log scale


@dataclass
class PosteriorSample:
    """Parameter draws (chains x draws x parameters) and how the sampler fared."""

    params: np.ndarray
    warmup: int  # adaptation steps per chain, discarded
    divergences: int
    seconds: float

    def diagnostics(self) -> pd.DataFrame:
        """One row per parameter: split R-hat (rank-normalised), bulk and tail effective sample size
        (the 5% and 95% quantiles), as Vehtari et al. (2021) define them.

        ArviZ's numpy implementation: blackjax's (JAX) computed the same R-hat (to 1e-15) and
        effective sizes within 2%, but had to be compiled first in every process that checks
        chains. Four chains of 1,000 draws of 45 parameters in a fresh process: 1.2 s here, import
        included, against 4.4 s (median of three each)."""
        from arviz_stats.base import array_stats

        axes = {"chain_axis": 0, "draw_axis": 1}
        return pd.DataFrame(
            {
                "rhat": array_stats.rhat(self.params, method="rank", **axes),
                "ess_bulk": array_stats.ess(self.params, method="bulk", **axes),
                "ess_tail": array_stats.ess(self.params, method="tail", prob=TAIL_QUANTILES, **axes),
            }
        )


def _whitened_log_density(fitted: FittedModel):
    """The log posterior density at theta = mode + L z, as a JAX function of z (up to a constant)."""
    import jax.numpy as jnp

    from milcourts.model import derivatives

    obs = fitted.obs
    design = fitted.observed_design()
    objective = _objective(obs, design, fitted.penalty, phi_prior(fitted.spec.likelihood))
    positions = jnp.asarray(objective.positions)
    chol = jnp.asarray(np.linalg.cholesky(fitted.cov))
    mode = jnp.asarray(fitted.params)
    padded = jnp.zeros(objective.size)

    def log_density(z):
        theta = padded.at[positions].set(mode + chol @ z)
        return -derivatives.negative_log_posterior(
            theta, objective.data, objective.prior_mean, objective.prior_precision
        )

    return log_density, np.asarray(chol)


def _chain_function(fitted: FittedModel):
    """One chain (dispersed start, adaptation, draws) as a function of its key, for this fit, to be
    compiled with the chain lengths as static arguments (_compiled_chain); it closes over the fit's
    arrays."""
    import blackjax
    import jax

    log_density, _ = _whitened_log_density(fitted)
    size = len(fitted.params)
    adaptation = blackjax.window_adaptation(blackjax.nuts, log_density, is_mass_matrix_diagonal=True)

    def one_chain(key, warmup: int, draws: int):
        start_key, warmup_key, sample_key = jax.random.split(key, 3)
        # dispersed starts: draws from the Laplace approximation, sd doubled
        start = 2.0 * jax.random.normal(start_key, (size,))
        (state, tuned), _ = adaptation.run(warmup_key, start, num_steps=warmup)
        kernel = blackjax.nuts(log_density, **tuned)

        def step(state, key):
            state, info = kernel.step(key, state)
            return state, (state.position, info.is_divergent)

        _, (positions, divergent) = jax.lax.scan(step, state, jax.random.split(sample_key, draws))
        return positions, divergent.sum()

    return jax.jit(one_chain, static_argnames=("warmup", "draws"))


def _chain_keys(chains: int, seed: int):
    import jax

    return jax.random.split(jax.random.key(seed), chains)


def _fingerprint(fitted: FittedModel, warmup: int, draws: int) -> str:
    """Which chain a compiled chain function runs: the fit's figures, penalty, mode and covariance
    (the density's arrays are compiled in) and the chain lengths."""
    digest = hashlib.sha256()
    for array in (fitted.obs.value, fitted.obs.weights, [fitted.penalty], fitted.params, fitted.cov):
        digest.update(np.asarray(array, float).tobytes())
    return f"{digest.hexdigest()}:{warmup}:{draws}"


# The last chain compiled in this process, or installed by its parent (_install_chain), by
# _fingerprint: compiling takes about 9 s, and a second sampling of the same fit (a test sampling
# one fit twice) then does not compile again. Only the last is kept: it holds the fit's arrays.
_LAST_CHAIN: dict = {}


def _install_chain(fingerprint: str, exported: tuple) -> None:
    """Pool initializer: the parent's compiled chain (see derivatives.serialised), if it loads."""
    from milcourts.model.derivatives import loaded

    compiled = loaded(exported)
    if compiled is not None:
        _LAST_CHAIN.clear()
        _LAST_CHAIN[fingerprint] = compiled


def _compiled_chain(fitted: FittedModel, warmup: int, draws: int):
    """The chain as a compiled function of its key alone (any key: the seed is not compiled in)."""
    fingerprint = _fingerprint(fitted, warmup, draws)
    if fingerprint not in _LAST_CHAIN:
        compiled = _chain_function(fitted).lower(_chain_keys(1, 0)[0], warmup=warmup, draws=draws).compile()
        _LAST_CHAIN.clear()
        _LAST_CHAIN[fingerprint] = compiled
    return _LAST_CHAIN[fingerprint]


def _run_chains(fitted: FittedModel, chain_indices: list[int], chains: int, warmup: int, draws: int, seed: int):
    """Whitened positions (one array per chain) and divergences of the chains `chain_indices` of
    `chains`: each chain's key is the same whichever process runs it, so the draws are too."""
    with model_numerics():  # a worker from the fork server does not inherit the parent's limits
        one_chain = _compiled_chain(fitted, warmup, draws)
        keys = _chain_keys(chains, seed)
        out = []
        for i in chain_indices:
            positions, divergent = one_chain(keys[i])
            out.append((np.asarray(positions), int(divergent)))
        return out


def sample_posterior(
    fitted: FittedModel,
    chains: int = CHAINS,
    warmup: int = WARMUP_STEPS,
    draws: int = DRAWS_PER_CHAIN,
    seed: int = SEED,
    workers: int = 1,
) -> PosteriorSample:
    """NUTS draws of the fit's parameters given the published figures (penalty as chosen).

    `workers` > 1: the chains are shared between this process and workers-1 others, with the same
    draws as one process, chain for chain (a chain of the main fit takes about 12 s). This process
    compiles the sampler (about 9 s on two cores) and sends it to the workers, which would otherwise
    compile it again (15 s of processor time each, on the same cores). The fit stage uses two (or
    --jobs): nothing else runs while the main fit's checks do."""
    started = time.perf_counter()
    workers = max(1, min(workers, chains))
    shares = [list(range(chains))[w::workers] for w in range(workers)]
    if workers > 1:
        from milcourts.model.derivatives import serialised

        with model_numerics():
            exported = serialised(_compiled_chain(fitted, warmup, draws))
        fingerprint = _fingerprint(fitted, warmup, draws)
        pool = process_pool(workers - 1, *((_install_chain, (fingerprint, exported)) if exported else ()))
        try:
            pending = [pool.submit(_run_chains, fitted, share, chains, warmup, draws, seed) for share in shares[1:]]
            results = {0: _run_chains(fitted, shares[0], chains, warmup, draws, seed)}
            results.update({w + 1: future.result() for w, future in enumerate(pending)})
        except BaseException:
            # an error or an interruption here: stop the worker's chains now instead of waiting for them
            stop_now(pool)
            raise
        pool.shutdown()
    else:
        results = {0: _run_chains(fitted, shares[0], chains, warmup, draws, seed)}
    by_chain = {i: run for w, share in enumerate(shares) for i, run in zip(share, results[w])}
    whitened = [by_chain[i][0] for i in range(chains)]
    divergences = sum(by_chain[i][1] for i in range(chains))
    chol = np.linalg.cholesky(fitted.cov)
    params = np.asarray(fitted.params) + np.stack(whitened) @ chol.T
    return PosteriorSample(params, warmup, divergences, time.perf_counter() - started)


def _compared_quantities(fitted: FittedModel, draws) -> pd.DataFrame:
    """The effects, the yearly totals and a few months, as one long table (quantity, estimate,
    lower_95, upper_95)."""
    effects = effects_table(fitted, draws)
    monthly = monthly_filings_table(fitted, draws)
    yearly = yearly_totals_table(draws, monthly)
    frames = [
        pd.DataFrame(
            {
                "kind": "effect",
                "article": effects["article"],
                "quantity": effects["effect"],
                "estimate": effects["estimate"],
                "lower_95": effects["lower_95"],
                "upper_95": effects["upper_95"],
                "is_estimable": effects["is_estimable"],
            }
        )
    ]
    full_years = yearly[(yearly["forecast_months"] == 0) & (yearly["months"] == 12)]
    frames.append(
        pd.DataFrame(
            {
                "kind": "yearly total",
                "article": full_years["article"],
                "quantity": "cases received in " + full_years["year"].astype(str),
                "estimate": full_years["expected"],
                "lower_95": full_years["lower_95"],
                "upper_95": full_years["upper_95"],
                "is_estimable": True,
            }
        )
    )
    break_index = month_index(draws.months, fitted.spec.break_month)
    chosen = [str(m) for m in draws.months[break_index : draws.n_observed : MONTH_STRIDE]]
    months = monthly[monthly["month"].isin(chosen) & monthly["article"].isin(ARTICLES)]
    frames.append(
        pd.DataFrame(
            {
                "kind": "month",
                "article": months["article"],
                "quantity": "cases received in " + months["month"],
                "estimate": months["expected"],
                "lower_95": months["lower_95"],
                "upper_95": months["upper_95"],
                "is_estimable": True,
            }
        )
    )
    return pd.concat(frames, ignore_index=True)


def _draw_rows(draws: Draws, rows: slice) -> Draws:
    """The same draws, only `rows` of them (every per-draw array sliced along its first axis)."""
    n = len(draws.coef)
    return replace(
        draws,
        **{
            f.name: getattr(draws, f.name)[rows]
            for f in fields(draws)
            if isinstance(getattr(draws, f.name), np.ndarray) and getattr(draws, f.name).shape[:1] == (n,)
        },
    )


def _on_comparison_scale(ends: pd.DataFrame, quantity: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Interval ends as they are compared: a rate ratio's as logarithms (where every end in its row
    is positive), everything else as it is; and which rows were logged."""
    logged = quantity.str.contains(RATIO_QUANTITY) & (ends > 0).all(axis=1)
    return ends.where(~logged, np.log(ends.where(logged, 1.0))), logged


def endpoint_errors(fitted: FittedModel, draws: Draws, batches: int) -> pd.DataFrame:
    """Monte Carlo standard error of each compared quantity's interval ends (batch means; on the log
    scale for rate ratios): `draws` cut into `batches` runs of consecutive draws (a chain's draws
    are consecutive in them), each run's ends read off as the full sample's are."""
    size = len(draws.coef) // batches
    ends = pd.concat(
        [_compared_quantities(fitted, _draw_rows(draws, slice(k * size, (k + 1) * size))) for k in range(batches)],
        ignore_index=True,
    )
    ends[["lower_95", "upper_95"]] = _on_comparison_scale(ends[["lower_95", "upper_95"]], ends["quantity"])[0]
    grouped = ends.groupby(["kind", "article", "quantity"], sort=False)[["lower_95", "upper_95"]]
    return (grouped.std(ddof=1) / np.sqrt(batches)).add_suffix("_se").reset_index()


def compare_intervals(
    laplace: pd.DataFrame,
    posterior: pd.DataFrame,
    laplace_errors: pd.DataFrame | None = None,
    posterior_errors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each quantity's Laplace and full-posterior 95% intervals; how much wider the posterior's is
    and how far each end moved, in widths of the Laplace interval (of its logarithm for a rate
    ratio), with the Monte Carlo standard error of each shift when the two samples' endpoint errors
    are given (endpoint_errors; none otherwise), and the verdict (see AGREEMENT_SHARE)."""
    table = laplace.merge(
        posterior[["kind", "article", "quantity", "estimate", "lower_95", "upper_95"]],
        on=["kind", "article", "quantity"],
        suffixes=("_laplace", "_posterior"),
        validate="one_to_one",
    )
    ends = table[["lower_95_laplace", "upper_95_laplace", "lower_95_posterior", "upper_95_posterior"]]
    scaled, ratio = _on_comparison_scale(ends, table["quantity"])
    width = scaled["upper_95_laplace"] - scaled["lower_95_laplace"]
    table["log_scale"] = ratio
    table["width_ratio"] = (scaled["upper_95_posterior"] - scaled["lower_95_posterior"]) / width
    table["lower_shift_in_widths"] = (scaled["lower_95_posterior"] - scaled["lower_95_laplace"]) / width
    table["upper_shift_in_widths"] = (scaled["upper_95_posterior"] - scaled["upper_95_laplace"]) / width
    keys = ["kind", "article", "quantity"]
    for end in ("lower", "upper"):
        variance = pd.Series(0.0, index=table.index)
        for errors in (laplace_errors, posterior_errors):
            if errors is not None:
                error = table[keys].merge(errors, on=keys, how="left", validate="many_to_one")[f"{end}_95_se"]
                variance = variance + error.to_numpy() ** 2
        table[f"{end}_shift_se"] = np.sqrt(variance) / width
    shifts = table[["lower_shift_in_widths", "upper_shift_in_widths"]].abs().to_numpy()
    errors = MONTE_CARLO_Z * table[["lower_shift_se", "upper_shift_se"]].to_numpy()
    agrees = (shifts + errors < AGREEMENT_SHARE).all(axis=1)
    differs = (shifts - errors > AGREEMENT_SHARE).any(axis=1)
    verdict = np.where(agrees, AGREES, np.where(differs, DIFFERS, TOO_CLOSE))
    # a quantity without an interval (a correlation) has nothing to compare
    table["verdict"] = pd.Series(verdict, index=table.index).where(width.notna())
    return table


def run_posterior_check(fitted: FittedModel, laplace_draws, sample: PosteriorSample) -> dict[str, pd.DataFrame]:
    """The comparison table and a one-row summary of the sampler's diagnostics."""
    flat = sample.params.reshape(-1, sample.params.shape[-1])
    posterior_draws = simulate(fitted, params=flat, condition=laplace_draws.is_conditioned)
    comparison = compare_intervals(
        _compared_quantities(fitted, laplace_draws),
        _compared_quantities(fitted, posterior_draws),
        endpoint_errors(fitted, laplace_draws, LAPLACE_BATCHES),
        endpoint_errors(fitted, posterior_draws, POSTERIOR_BATCHES_PER_CHAIN * sample.params.shape[0]),
    )
    diagnostics = sample.diagnostics()
    summary = pd.DataFrame(
        [
            {
                "chains": sample.params.shape[0],
                "warmup_per_chain": sample.warmup,
                "draws_per_chain": sample.params.shape[1],
                "laplace_draws": len(laplace_draws.coef),
                "penalty": fitted.penalty,
                "max_rhat": float(diagnostics["rhat"].max()),
                "min_ess_bulk": float(diagnostics["ess_bulk"].min()),
                "min_ess_tail": float(diagnostics["ess_tail"].min()),
                "divergences": sample.divergences,
                "is_converged": bool(
                    diagnostics["rhat"].max() <= MAX_RHAT
                    and diagnostics[["ess_bulk", "ess_tail"]].min().min() >= MIN_ESS
                    and sample.divergences == 0
                ),
                "quantities": int(comparison["verdict"].notna().sum()),
                "quantities_agreeing": int((comparison["verdict"] == AGREES).sum()),
                "quantities_differing": int((comparison["verdict"] == DIFFERS).sum()),
                "median_shift_se_in_widths": float(
                    comparison[["lower_shift_se", "upper_shift_se"]].max(axis=1).median()
                ),
                "sampling_seconds": round(sample.seconds, 1),
            }
        ]
    )
    parameters = pd.DataFrame(
        {
            "parameter": fitted.names,
            "mode": fitted.params,
            "laplace_sd": np.sqrt(np.diag(fitted.cov)),
            "posterior_median": np.median(flat, axis=0),
            "posterior_sd": flat.std(axis=0),
            **diagnostics,
        }
    )
    parameters["sd_ratio"] = parameters["posterior_sd"] / parameters["laplace_sd"]
    return {"summary": summary, "intervals": comparison, "parameters": parameters}
