"""A small, fast version of the validation studies (the full ones run in `make validate`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.checks.validation import (
    ValidationSettings,
    leave_one_out,
    simulation_study,
    summarise_rolling_origin,
    summarise_simulation,
)
from milcourts.inputs.constraints import build_constraint_view

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


def test_a_replicate_view_from_the_template_equals_one_built_from_scratch():
    """Replicates reuse the first replicate's view with their own values (with_values): the same
    figures, weights and months as building the view of the replicate's ledger."""
    from milcourts.checks.validation import pattern_of, with_values

    pattern = pattern_of(build_constraint_view(synthetic_ledger(3, quarters_around_break=True)))
    truth = default_truth()
    template = build_constraint_view(
        publish(truth, simulate_counts(truth, np.random.default_rng(4)), pattern), with_conflicts=False
    )
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(5)), pattern)
    built = build_constraint_view(ledger, with_conflicts=False)
    reused = with_values(template, ledger)
    pd.testing.assert_frame_equal(reused.figures, built.figures)
    pd.testing.assert_frame_equal(reused.month_weights, built.month_weights)
    assert reused.months.equals(built.months) and len(reused.revisions) == len(built.revisions) == 0
    assert not reused.figures["value"].equals(template.figures["value"])
