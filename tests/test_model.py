"""The monthly filings model on synthetic ledgers whose true monthly series is known."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from milcourts.__main__ import main
from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.inputs.constraints import build_constraint_view
from milcourts.inputs.ledger import published_by
from milcourts.model.fit import fit_filings_model
from milcourts.model.simulate import predict_total, simulate
from milcourts.model.spec import PRIOR_PRE_SLOPE_SD, ModelSpec
from milcourts.model.tables import effects_table, fit_to_ledger_table, monthly_filings_table

FAST = ModelSpec(penalty_grid=(0.1, 1.0), n_draws=1000)


def effect(effects: pd.DataFrame, article: str, starts: str) -> pd.Series:
    rows = effects[(effects["article"] == article) & effects["effect"].str.startswith(starts)]
    assert len(rows) == 1, f"expected one effect starting {starts!r} for {article}, got {rows['effect'].tolist()}"
    return rows.iloc[0]


@pytest.fixture(scope="module")
def synthetic_fit():
    truth = default_truth()
    counts = simulate_counts(truth, np.random.default_rng(7))
    ledger = publish(truth, counts, aggregate_pattern(months_2024=("337",)))
    fitted = fit_filings_model(build_constraint_view(ledger), FAST)
    return truth, counts, fitted, simulate(fitted)


def test_recovers_known_effects_within_their_intervals(synthetic_fit):
    truth, _, fitted, draws = synthetic_fit
    effects = effects_table(fitted, draws)
    step = effect(effects, "337", "level rate ratio at the break")
    assert step["lower_95"] <= 2.0 <= step["upper_95"]
    late_growth = effect(effects, "337", "monthly growth 2023-04 to 2023-06")
    assert late_growth["lower_95"] <= truth.monthly_growth_pct("337", 3) <= late_growth["upper_95"]
    assert all(fitted.selection["converged"])


def test_monthly_intervals_cover_the_true_counts(synthetic_fit):
    truth, counts, fitted, draws = synthetic_fit
    observed = slice(0, len(truth.months))
    lower = np.quantile(draws.counts[:, :, observed], 0.025, axis=0)
    upper = np.quantile(draws.counts[:, :, observed], 0.975, axis=0)
    coverage = np.mean((counts >= lower) & (counts <= upper))
    assert coverage >= 0.85, f"95% monthly prediction intervals covered only {coverage:.0%} of true counts"


def test_aggregate_only_pattern_still_recovers_the_slope():
    truth = default_truth()
    counts = simulate_counts(truth, np.random.default_rng(11))
    ledger = publish(truth, counts, aggregate_pattern())
    fitted = fit_filings_model(build_constraint_view(ledger), FAST)
    effects = effects_table(fitted, simulate(fitted))
    last = effects[(effects["article"] == "337") & effects["effect"].str.startswith("monthly growth 2024-04")].iloc[0]
    assert last["lower_95"] <= truth.monthly_growth_pct("337", 3) <= last["upper_95"]


def test_contradictory_ledger_is_reported_not_crashed():
    truth = default_truth()
    counts = simulate_counts(truth, np.random.default_rng(3))
    ledger = publish(truth, counts, aggregate_pattern(articles=("337",), include_all_articles=False))
    # a whole published later than its parts but smaller than them: no revision explains it
    whole = ledger.iloc[[0]].assign(
        figure_id="F900",
        period_start=pd.Timestamp("2021-01-01"),
        period_end=pd.Timestamp("2022-12-31"),
        value=float(ledger.iloc[0]["value"]) / 2,
        source_date=pd.Timestamp("2025-07-01"),
    )
    ledger = pd.concat([ledger, whole], ignore_index=True)
    view = build_constraint_view(ledger)
    assert "F900" in set(view.conflicts["whole_figure_id"])
    fitted = fit_filings_model(view, FAST)
    row = fit_to_ledger_table(fitted, simulate(fitted)).set_index("figure_id").loc["F900"]
    assert row["is_used"] and "parts_exceed_whole" in row["conflicts"]
    assert row["standardised_residual"] < -2


def test_output_tables_follow_the_documented_interfaces(synthetic_fit, tmp_path):
    truth, _, fitted, draws = synthetic_fit
    monthly = monthly_filings_table(fitted, draws)
    assert list(monthly.columns) == [
        "article",
        "month",
        "expected",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
        "has_published_month",
        "is_provisional",
        "is_forecast",
    ]
    flags = monthly[(monthly["article"] == "337") & ~monthly["is_forecast"]]["is_provisional"].to_numpy()
    assert not flags[0] and (np.diff(flags.astype(int)) >= 0).all()  # if any, only the latest months
    assert set(monthly["article"]) == {"337", "338", "332", "all_refusal"}
    assert (monthly["lower_95"] <= monthly["lower_80"]).all() and (monthly["upper_80"] <= monthly["upper_95"]).all()
    assert monthly.groupby("article")["is_forecast"].sum().eq(FAST.forecast_months).all()
    per_article = monthly[monthly["article"] != "all_refusal"].groupby("month")["expected"].sum()
    total = monthly[monthly["article"] == "all_refusal"].set_index("month")["expected"]
    assert np.allclose(per_article.loc[total.index], total, atol=0.2)  # each is rounded to 0.1
    assert monthly[(monthly["article"] == "337") & (monthly["month"] == "2024-03")]["has_published_month"].item()
    effects = effects_table(fitted, draws)
    assert list(effects.columns) == [
        "article",
        "effect",
        "estimate",
        "lower_95",
        "upper_95",
        "method",
        "posterior_sd_to_prior_sd",
        "not_estimable_because",
        "is_estimable",
    ]
    # the small series' pre-break growth is Art. 337's plus a deviation their figures cannot move
    pre = effects[effects["effect"].str.startswith("monthly growth 2021-01")].set_index("article")
    assert pre.loc["337", "is_estimable"] and not pre.loc["338", "is_estimable"]
    assert pre.loc["338", "posterior_sd_to_prior_sd"] > 0.5
    with_interval = effects.dropna(subset=["lower_95", "upper_95"])
    assert len(with_interval) >= len(effects) - 3  # only the 3 identification rows have no interval
    assert (with_interval["lower_95"] <= with_interval["upper_95"]).all()


def test_window_prediction_agrees_with_the_monthly_table(synthetic_fit):
    _, _, fitted, draws = synthetic_fit
    one_month = predict_total(draws, "337", "2024-03-01", "2024-03-31")
    monthly = monthly_filings_table(fitted, draws)
    row = monthly[(monthly["article"] == "337") & (monthly["month"] == "2024-03")].iloc[0]
    assert one_month["estimate"] == pytest.approx(row["expected"], rel=1e-3)
    assert one_month["lower_95"] == row["lower_95"] and one_month["upper_95"] == row["upper_95"]
    half = predict_total(draws, "337", "2024-03-01", "2024-03-16")  # 16 of 31 days
    assert half["estimate"] == pytest.approx(one_month["estimate"] * 16 / 31, rel=1e-3)
    with pytest.raises(ValueError, match="outside the modelled months"):
        predict_total(draws, "337", "2030-01-01", "2030-02-01")


def test_published_by_keeps_only_what_was_known(real_ledger):
    from milcourts.inputs.ledger import load_ledger

    ledger = load_ledger(real_ledger)
    known = published_by(ledger, "2023-12-31")
    published = known["source_date"].fillna(known["period_end"])
    assert (published <= pd.Timestamp("2023-12-31")).all()
    assert (known["period_end"] <= pd.Timestamp("2023-12-31")).all()
    assert "F042" in set(known["figure_id"]) and "F019" not in set(known["figure_id"])


@pytest.mark.slow
def test_predict_cli_prints_json_with_intervals(capsys):
    assert main(["predict", "--article", "337", "--start", "2024-01-01", "--end", "2024-06-30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"estimate", "lower_95", "upper_95", "lower_80", "upper_80"}
    assert result["lower_95"] <= result["lower_80"] <= result["estimate"] <= result["upper_80"] <= result["upper_95"]


def test_reconstruction_is_integer_nonnegative_and_pinned_by_a_published_month():
    truth = default_truth()
    counts = simulate_counts(truth, np.random.default_rng(5))
    ledger = publish(
        truth, counts, aggregate_pattern(articles=("337",), include_all_articles=False, months_2024=("337",))
    )
    fitted = fit_filings_model(build_constraint_view(ledger), FAST)
    conditioned = simulate(fitted, seed=1)
    free = simulate(fitted, seed=1, condition=False)
    assert conditioned.is_conditioned and not free.is_conditioned
    observed = conditioned.counts[:, :, : conditioned.n_observed]
    assert (observed >= 0).all() and np.array_equal(observed, np.round(observed))
    march = list(conditioned.months.astype(str)).index("2024-03")
    published = ledger.set_index(["period_start"]).loc[pd.Timestamp("2024-03-01"), "value"]
    given = conditioned.counts[:, 0, march]
    assert abs(np.median(given) - published) < 0.05 * published  # pinned to the figure

    def width(x):
        return np.subtract(*np.quantile(x, [0.975, 0.025]))

    assert width(given) < 0.5 * width(free.counts[:, 0, march])  # and sharper for it


def test_break_profile_finds_the_true_break_month(synthetic_fit):
    from milcourts.checks.breakdate import profile_break_month, ruptures_break_month

    truth, counts, fitted, draws = synthetic_fit
    ledger = publish(truth, counts, aggregate_pattern(months_2024=("337",)))
    profile = profile_break_month(build_constraint_view(ledger), FAST, penalty=1.0, first="2022-08", last="2022-12")
    assert profile["break_month"].tolist() == ["2022-08", "2022-09", "2022-10", "2022-11", "2022-12"]
    assert truth.break_month in set(profile.loc[profile["is_in_95_interval"], "break_month"])
    assert profile.loc[profile["drop_from_best"] == 0, "break_month"].item() in ("2022-09", "2022-10", "2022-11")
    assert ruptures_break_month(draws) in [str(m) for m in pd.period_range("2022-08", "2023-04", freq="M")]


def test_effects_state_how_well_pre_trend_and_step_are_separated(synthetic_fit):
    _, _, fitted, draws = synthetic_fit
    effects = effects_table(fitted, draws)
    rows = effects[effects["effect"] == "correlation of pre-break slope and level step across draws"]
    assert rows["article"].tolist() == ["337", "338", "332"]
    assert rows["estimate"].between(-1, 1).all()
    assert rows["method"].str.startswith("identification check").all()


def test_mobilisation_base_share_is_recovered_and_does_not_bias_the_break():
    """Running totals since 21 Sep 2022 that count only 80% of cases (20% in Sep-Dec 2022), as
    Mediazona's new-parts base does, beside annual totals and 2024 months in the full base."""
    truth = replace(default_truth(), mobilisation_base_share=(0.8, 0.2))
    counts = simulate_counts(truth, np.random.default_rng(21))
    ledger = publish(
        truth, counts, aggregate_pattern(articles=("337",), include_all_articles=False, months_2024=("337",))
    )
    fitted = fit_filings_model(build_constraint_view(ledger), FAST)
    draws = simulate(fitted)
    effects = effects_table(fitted, draws)
    later = effect(effects, "337", "share of cases counted by 'since mobilisation' totals, from 2023-01")
    assert later["lower_95"] <= 0.8 <= later["upper_95"] and later["upper_95"] < 0.95
    early = effect(effects, "337", "share of cases counted by 'since mobilisation' totals, 2022-09")
    assert early["lower_95"] <= 0.8 * 0.2 <= early["upper_95"]
    step = effect(effects, "337", "level rate ratio at the break")
    assert step["lower_95"] <= 2.0 <= step["upper_95"]
    table = fit_to_ledger_table(fitted, draws)
    running = table[table["period_start"] == "2022-09-21"]
    assert len(running) == 3 and running["is_inside_95"].all()


def test_bounds_count_as_misfit_only_when_the_fit_breaks_them(synthetic_fit):
    truth, _, fitted, draws = synthetic_fit
    table = fit_to_ledger_table(fitted, draws).set_index("figure_id")
    annual = table[
        (table["period_start"] == "2023-01-01") & (table["period_end"] == "2023-12-31") & (table["article"] == "337")
    ].iloc[0]
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern(months_2024=("337",)))
    bound = ledger[ledger["figure_id"] == annual.name].copy()
    rows = []
    for fid, qualifier, factor in (
        ("F901", "at_least", 0.5),
        ("F902", "at_least", 2.0),
        ("F903", "at_most", 2.0),
        ("F904", "at_most", 0.5),
    ):
        rows.append(
            bound.assign(
                figure_id=fid,
                value_qualifier=qualifier,
                value=annual["value"] * factor,
                period_start=pd.Timestamp("2023-01-01"),
                period_end=pd.Timestamp("2023-12-30"),
            )
        )
    view = build_constraint_view(pd.concat([ledger, *rows], ignore_index=True))
    refit = fit_filings_model(view, FAST)
    out = fit_to_ledger_table(refit, simulate(refit)).set_index("figure_id")
    assert out.loc["F901", "is_inside_95"] and out.loc["F901", "standardised_residual"] == 0  # "at least half"
    assert not out.loc["F902", "is_inside_95"] and out.loc["F902", "standardised_residual"] > 0
    assert out.loc["F903", "is_inside_95"] and out.loc["F903", "standardised_residual"] == 0  # "at most double"
    assert not out.loc["F904", "is_inside_95"] and out.loc["F904", "standardised_residual"] < 0


def test_a_fit_without_pre_break_figures_admits_it_knows_nothing_of_the_pre_trend():
    truth = default_truth()
    counts = simulate_counts(truth, np.random.default_rng(9))
    pattern = aggregate_pattern(articles=("337",), include_all_articles=False, months_2024=("337",))
    pattern = pattern[pd.to_datetime(pattern["period_start"]) >= pd.Timestamp("2023-01-01")]
    fitted = fit_filings_model(build_constraint_view(publish(truth, counts, pattern)), FAST)
    sd = dict(zip(fitted.names, np.sqrt(np.diag(fitted.cov))))
    # only the priors speak (the pre-slope's own, and the knot penalty tying it to 2023's slope):
    # the posterior sd stays of the prior's order, never the zero a pseudo-inverse would give
    assert sd["337:pre_slope"] > 0.5 * PRIOR_PRE_SLOPE_SD
    assert np.linalg.eigvalsh(fitted.cov).min() > 0
    back_cast = predict_total(simulate(fitted), "337", "2021-01-01", "2021-12-31")
    assert back_cast["upper_95"] > 3 * back_cast["lower_95"]


def test_poisson_likelihood_pins_month_dispersion_and_narrows_monthly_bands(synthetic_fit):
    truth, counts, fitted, draws = synthetic_fit
    ledger = publish(truth, counts, aggregate_pattern(months_2024=("337",)))
    poisson = fit_filings_model(build_constraint_view(ledger), replace(FAST, likelihood="poisson"))
    phi = np.exp(dict(zip(poisson.names, poisson.params))["log_phi"])
    assert phi < 1e-4
    poisson_counts = simulate(poisson, condition=False).counts
    nb_counts = simulate(fitted, condition=False).counts
    spread = lambda c: np.mean(np.quantile(c, 0.975, axis=0) - np.quantile(c, 0.025, axis=0))  # noqa: E731
    assert spread(poisson_counts) < spread(nb_counts)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        fit_filings_model(build_constraint_view(ledger), replace(FAST, likelihood="gaussian"))


# The model's month range: a figure dated in year 1000 once asked for 12,000 months and gigabytes.
_FAR_RANGE_SCRIPT = """
import resource, sys
import numpy as np
import pandas as pd
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
from milcourts.inputs.constraints import build_constraint_view
from milcourts.model.fit import fit_filings_model
from milcourts.model.spec import ModelSpec
from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
truth = default_truth()
ledger = publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern())
ledger.loc[0, "period_start"] = pd.Timestamp(sys.argv[1])
try:
    fit_filings_model(build_constraint_view(ledger), ModelSpec(penalty_grid=(1.0,), n_draws=50))
except ValueError as error:
    print("REFUSED:", error)
"""


@pytest.mark.parametrize("start", ["1000-01-01", "2001-01-01"])
def test_a_month_range_the_model_was_not_built_for_is_refused_before_allocating(start):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FAR_RANGE_SCRIPT, start], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REFUSED:" in done.stdout and "the model is built for at most 120 months" in done.stdout, done.stdout
    assert f"starts {start}" in done.stdout


def test_predict_refuses_a_window_far_beyond_the_forecast_horizon(capsys):
    assert main(["predict", "--article", "337", "--start", "2099-01-01", "--end", "2099-12-31"]) == 1
    err = capsys.readouterr().err
    assert "predict failed:" in err and "the model forecasts 0 to 36 months ahead" in err
