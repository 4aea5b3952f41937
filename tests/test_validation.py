"""A small, fast version of the validation studies (the full ones run in `make validate`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.checks.validation import (
    ValidationSettings,
    leave_one_out,
    simulation_study,
    summarise_rolling_origin,
    summarise_simulation,
)
from milcourts.inputs.constraints import build_constraint_view
from milcourts.vocabulary import ALL_ARTICLES

SETTINGS = ValidationSettings(penalty=0.3, n_draws=400)


def synthetic_ledger(seed: int, quarters_around_break: bool = False) -> pd.DataFrame:
    truth = default_truth()
    pattern = aggregate_pattern(articles=("337",), include_all_articles=False)
    extra = [("337", "2024-03-01", "2024-03-31", "2025-06-30")]
    if quarters_around_break:
        # quarter totals either side of the break: the step is then identified by the data, not
        # only through the annual totals and the running totals' uncertain counting base
        extra += [("337", "2022-07-01", "2022-09-30", "2025-06-30"), ("337", "2022-10-01", "2022-12-31", "2025-06-30")]
    pattern = pd.concat([pattern, pd.DataFrame(extra, columns=pattern.columns)], ignore_index=True)
    return publish(truth, simulate_counts(truth, np.random.default_rng(seed)), pattern)


def test_leave_one_out_scores_each_short_window():
    ledger = synthetic_ledger(1)
    scores = leave_one_out(ledger, SETTINGS)
    assert (
        scores["figure_id"].tolist()
        == ledger.loc[ledger["period_start"] == pd.Timestamp("2024-03-01"), "figure_id"].tolist()
    )
    row = scores.iloc[0]
    assert row["lower_95"] < row["predicted_median"] < row["upper_95"]
    assert row["is_covered"] == (row["lower_95"] <= row["value"] <= row["upper_95"])


def test_small_simulation_study_reports_bias_coverage_and_false_positives():
    view = build_constraint_view(synthetic_ledger(2, quarters_around_break=True))
    replicates = pd.concat(
        [simulation_study(view, SETTINGS, 4, True, workers=1), simulation_study(view, SETTINGS, 4, False, workers=1)],
        ignore_index=True,
    )
    assert len(replicates) == 8 and replicates["seed"].nunique() == 4
    summary = summarise_simulation(replicates).set_index("scenario")
    assert list(summary.index) == ["break", "no break"]
    for column in ("coverage_95_step", "coverage_95_slope_change", "rate_step_interval_excludes_no_change"):
        assert summary[column].between(0, 1).all()
    # with a doubling at the break every replicate should see it; with none, the truth is 0
    assert summary.loc["break", "rate_step_interval_excludes_no_change"] >= 0.75
    assert (replicates.loc[replicates["scenario"] == "no break", "true_log_step"] == 0).all()


def test_rolling_origin_summary_compares_with_naive():
    scores = pd.DataFrame(
        {
            "origin": ["2024-01-01", "2024-01-01", "2024-02-01"],
            "is_covered": [True, False, True],
            "model_abs_error": [10.0, 20.0, np.nan],
            "naive_abs_error": [20.0, 20.0, 5.0],
        }
    )
    summary = summarise_rolling_origin(scores).iloc[0]
    assert summary["origins"] == 2 and summary["targets"] == 3
    assert summary["coverage_95"] == 2 / 3
    assert summary["relative_mae"] == 15.0 / 20.0  # rows without a model error are not scored


def test_replicate_observations_from_the_template_equal_ones_prepared_from_scratch():
    """Replicates reuse the first replicate's observations with their own values
    (Observations.with_values): the same arrays as preparing the replicate's ledger from scratch."""
    from milcourts.checks.validation import pattern_of
    from milcourts.model.observations import prepare_observations

    pattern = pattern_of(build_constraint_view(synthetic_ledger(3, quarters_around_break=True)))
    truth = default_truth()
    template = prepare_observations(
        build_constraint_view(
            publish(truth, simulate_counts(truth, np.random.default_rng(4)), pattern), with_conflicts=False
        )
    )
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(5)), pattern)
    built = prepare_observations(build_constraint_view(ledger, with_conflicts=False))
    reused = template.with_values(built.value)
    assert not np.array_equal(template.value, built.value)
    pd.testing.assert_frame_equal(reused.figures, built.figures)
    for name in ("weights", "article_mask", "lag_first", "covered_days", "value", "qualifier", "later_partner"):
        np.testing.assert_array_equal(getattr(reused, name), getattr(built, name), err_msg=name)
    with pytest.raises(ValueError, match="one per fitted figure"):
        template.with_values(built.value[:-1])


def test_published_values_are_the_true_counts_each_figure_covers():
    """Worked by hand: a whole month, half of a 30-day month, a quarter of all three articles."""
    from milcourts.checks.synthetic import publication_weights, published_values

    truth = default_truth()
    counts = np.arange(3 * len(truth.months), dtype=float).reshape(3, -1) * 10 + 4
    pattern = pd.DataFrame(
        [
            ("337", "2021-03-01", "2021-03-31", "2025-06-30"),
            ("338", "2021-04-01", "2021-04-15", "2025-06-30"),
            (ALL_ARTICLES, "2021-01-01", "2021-03-31", "2025-06-30"),
        ],
        columns=["article", "period_start", "period_end", "source_date"],
    )
    values = published_values(publication_weights(truth, pattern), counts)
    assert values[0] == counts[0, 2]
    assert values[1] == np.round(counts[1, 3] / 2)
    assert values[2] == counts[:, :3].sum()
    assert publish(truth, counts, pattern)["value"].tolist() == values.tolist()


def test_work_shared_with_a_pool_comes_back_in_order_with_this_process_doing_its_own_first():
    from concurrent.futures import ThreadPoolExecutor

    from milcourts.checks.validation import _run_shared

    done_here = []

    def square(x):
        return x * x

    with ThreadPoolExecutor(1) as pool:
        own, results = _run_shared(pool, square, list(range(40)), lambda: done_here.append("own") or "own result")
    assert own == "own result" and done_here == ["own"]
    assert results == [x * x for x in range(40)]

    def fails():
        raise RuntimeError("own work failed")

    ran = []

    def slow(x):
        time.sleep(0.01)
        ran.append(x)

    with ThreadPoolExecutor(1) as pool, pytest.raises(RuntimeError, match="own work failed"):
        _run_shared(pool, slow, list(range(40)), fails)
    assert len(ran) < 5, ran  # the queued tasks were dropped, not run after the error
