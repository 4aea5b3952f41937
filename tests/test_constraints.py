"""Figures as month weights, vintages and conflicts, on tiny ledgers with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from milcourts.inputs.constraints import build_constraint_view, month_weights
from milcourts.inputs.ledger import load_ledger
from tests.conftest import row

P = pd.Period


def weights(start: str, end: str) -> dict[str, float]:
    return {str(k): v for k, v in month_weights(pd.Timestamp(start), pd.Timestamp(end)).items()}


def test_whole_month_and_year():
    assert weights("2023-03-01", "2023-03-31") == {"2023-03": 1.0}
    year = weights("2023-01-01", "2023-12-31")
    assert len(year) == 12 and set(year.values()) == {1.0}


def test_partial_months_weighted_by_days():
    # "since mobilisation" starts on 21 September: 10 of September's 30 days
    w = weights("2022-09-21", "2022-11-05")
    assert w == pytest.approx({"2022-09": 10 / 30, "2022-10": 1.0, "2022-11": 5 / 30})


def test_leap_and_common_february():
    assert weights("2024-02-15", "2024-02-29") == pytest.approx({"2024-02": 15 / 29})
    assert weights("2023-02-15", "2023-02-28") == pytest.approx({"2023-02": 14 / 28})
    assert weights("2024-02-01", "2024-02-29") == {"2024-02": 1.0}


def test_single_day_and_year_crossing():
    assert weights("2023-12-29", "2023-12-29") == pytest.approx({"2023-12": 1 / 31})
    assert weights("2023-12-30", "2024-01-02") == pytest.approx({"2023-12": 2 / 31, "2024-01": 2 / 31})


def test_end_before_start_is_an_error():
    with pytest.raises(ValueError, match="before period_start"):
        month_weights(pd.Timestamp("2023-02-01"), pd.Timestamp("2023-01-01"))


def view_of(write_ledger, rows, **kwargs):
    return build_constraint_view(load_ledger(write_ledger(rows)), **kwargs)


def test_weights_matrix_and_long_form(write_ledger):
    view = view_of(
        write_ledger,
        [
            row(
                figure_id="F001",
                period_start="2022-09-21",
                period_end="2022-10-31",
                measure="cumulative",
                source_date="2022-11-01",
            )
        ],
        first_month="2022-08",
    )
    assert [str(m) for m in view.months] == ["2022-08", "2022-09", "2022-10"]
    assert view.month_weights.loc["F001"].tolist() == pytest.approx([0.0, 1 / 3, 1.0])
    long = view.weights_long()
    assert long[["figure_id", "month"]].values.tolist() == [["F001", "2022-09"], ["F001", "2022-10"]]


def test_every_figure_of_the_series_is_used_or_excluded_with_a_reason(write_ledger):
    rows = [
        row(figure_id="F001"),
        row(figure_id="F002", measure="cumulative_persons", value="10"),
        row(figure_id="F003", measure="share", value="88"),
        row(figure_id="F004", period_end="", source_date=""),
        row(figure_id="F005", article="na"),
        row(figure_id="F006", series="court_verdicts"),
    ]
    view = view_of(write_ledger, rows)
    assert view.figures["figure_id"].tolist() == ["F001"]
    reasons = dict(zip(view.excluded["figure_id"], view.excluded["exclusion_reason"]))
    assert set(reasons) == {"F002", "F003", "F004", "F005"}  # F006 is another series
    assert reasons["F002"].startswith("counts persons, not cases")
    assert reasons["F003"] == "measure 'share' is not a sum of monthly cases"
    assert reasons["F004"].startswith("period_end not published")
    assert reasons["F005"].startswith("article 'na' is not one of the modelled articles")


def test_persons_view_never_takes_cases(write_ledger):
    rows = [row(figure_id="F001"), row(figure_id="F002", measure="count_persons", value="5100")]
    view = view_of(write_ledger, rows, unit="persons")
    assert view.figures["figure_id"].tolist() == ["F002"]
    assert set(view.figures["unit"]) == {"persons"}


def test_latest_vintage_preferred_and_all_kept(write_ledger):
    rows = [
        row(figure_id="F001", period_end="2023-12-29", value="5024", source_date="2023-12-29"),
        row(figure_id="F002", period_end="2023-12-31", value="5092", source_date="2024-03-04"),
        row(
            figure_id="F003", period_start="2023-01-01", period_end="2023-06-30", value="2076", source_date="2023-07-19"
        ),
    ]
    view = view_of(write_ledger, rows)
    figures = view.figures.set_index("figure_id")
    assert figures.loc["F001", "revision_group"] == figures.loc["F002", "revision_group"]
    assert figures.loc["F002", "is_preferred"] and not figures.loc["F001", "is_preferred"]
    assert figures.loc["F003", "is_preferred"] and figures.loc["F003", "n_vintages"] == 1
    assert view.revisions["figure_id"].tolist() == ["F001", "F002"]
    assert view.conflicts.empty  # an upward revision is not a conflict


def test_running_totals_weeks_apart_are_different_periods(write_ledger):
    rows = [
        row(
            figure_id="F001",
            measure="cumulative",
            period_start="2022-09-21",
            period_end="2023-04-03",
            value="629",
            source_date="2023-04-11",
        ),
        row(
            figure_id="F002",
            measure="cumulative",
            period_start="2022-09-21",
            period_end="2023-04-27",
            value="951",
            source_date="2023-05-02",
        ),
    ]
    view = view_of(write_ledger, rows)
    assert view.figures["n_vintages"].tolist() == [1, 1]


def test_parts_exceeding_whole_published_later_is_a_conflict(write_ledger):
    rows = [
        row(figure_id="F001", period_start="2023-01-01", period_end="2023-12-31", value="5092"),
        row(figure_id="F002", period_start="2024-01-01", period_end="2024-02-29", value="1234"),
        row(figure_id="F003", measure="cumulative", period_start="2022-09-21", period_end="2024-02-29", value="6308"),
    ]
    view = view_of(write_ledger, rows)
    (conflict,) = view.conflicts.to_dict("records")
    assert conflict["kind"] == "parts_exceed_whole"
    assert conflict["whole_figure_id"] == "F003"
    assert conflict["part_figure_ids"] == "F001,F002"
    assert conflict["excess"] == 18
    assert conflict["description"].startswith("F001 (5,092) + F002 (1,234) = 6,326 exceeds F003 = 6,308")


def test_best_disjoint_parts_are_used_not_overlapping_ones(write_ledger):
    # F002 overlaps F001 and F003; the largest disjoint set is F001 + F003 = 90 <= 100: no conflict
    rows = [
        row(figure_id="F001", period_start="2023-01-01", period_end="2023-03-31", value="40"),
        row(figure_id="F002", period_start="2023-03-01", period_end="2023-04-30", value="45"),
        row(figure_id="F003", period_start="2023-04-01", period_end="2023-06-30", value="50"),
        row(
            figure_id="F004", period_start="2023-01-01", period_end="2023-06-30", value="100", source_date="2024-03-05"
        ),
    ]
    assert view_of(write_ledger, rows).conflicts.empty
    rows[3]["value"] = "89"
    (conflict,) = view_of(write_ledger, rows).conflicts.to_dict("records")
    assert conflict["part_figure_ids"] == "F001,F003" and conflict["parts_total"] == 90


def test_revision_can_explain_a_part_published_after_its_whole(write_ledger):
    rows = [
        row(
            figure_id="F001", period_start="2023-01-01", period_end="2023-06-30", value="2100", source_date="2024-03-04"
        ),
        row(
            figure_id="F002", period_start="2023-01-01", period_end="2023-09-30", value="2000", source_date="2023-10-01"
        ),
    ]
    assert view_of(write_ledger, rows).conflicts.empty


def test_bounds_and_approximations(write_ledger):
    part = row(figure_id="F001", period_start="2023-01-01", period_end="2023-06-30", value="2100")
    whole = row(figure_id="F002", period_start="2023-01-01", period_end="2023-09-30", value="2000")
    # an "at least" whole bounds nothing from above; an approximate part bounds nothing
    assert view_of(write_ledger, [part, {**whole, "value_qualifier": "at_least"}]).conflicts.empty
    assert view_of(write_ledger, [{**part, "value_qualifier": "approx"}, whole]).conflicts.empty
    assert len(view_of(write_ledger, [{**part, "value_qualifier": "at_least"}, whole]).conflicts) == 1


def test_article_parts_of_an_all_article_whole(write_ledger):
    rows = [
        row(figure_id="F001", article="337", value="5092"),
        row(figure_id="F002", article="338", value="156"),
        row(figure_id="F003", article="332", value="428"),
        row(figure_id="F004", article="all_refusal", value="5517", source_date="2024-12-27"),
    ]
    (conflict,) = view_of(write_ledger, rows).conflicts.to_dict("records")
    assert conflict["whole_figure_id"] == "F004"
    assert conflict["parts_total"] == 5676
    assert sorted(conflict["part_figure_ids"].split(",")) == ["F001", "F002", "F003"]


def test_same_day_disagreement_and_downward_revision(write_ledger):
    rows = [
        row(figure_id="F001", period_end="2023-12-29", value="5024", source_date="2023-12-29"),
        row(figure_id="F002", period_end="2023-12-29", value="5006", source_date="2023-12-29"),
        row(figure_id="F003", article="338", period_end="2023-12-29", value="160", source_date="2023-12-29"),
        row(figure_id="F004", article="338", value="150", source_date="2024-03-04"),
    ]
    view = view_of(write_ledger, rows)
    kinds = dict(zip(view.conflicts["kind"], view.conflicts["whole_figure_id"]))
    assert kinds == {"same_period_disagreement": "F001", "downward_revision": "F004"}
    # the same-day total is preferred over its subset, deterministically
    preferred = view.figures.set_index("figure_id")["is_preferred"]
    assert preferred["F001"] and not preferred["F002"]


def test_real_ledger_known_contradictions_are_listed(real_ledger):
    """The contradictions the ledger README and methods.md describe by hand are found."""
    view = build_constraint_view(load_ledger(real_ledger))
    found = {(c.kind, c.whole_figure_id) for c in view.conflicts.itertuples()}
    assert ("parts_exceed_whole", "F111") in found  # 5,092 + 156 + 428 > 5,517 (2023, all articles)
    assert ("parts_exceed_whole", "F025") in found  # 2023 + Jan-Feb 2024 > since-mobilisation 6,308
    assert ("same_period_disagreement", "F042") in found  # 5,024 vs the 5,006 subset, same day
    revised = view.figures.set_index("figure_id")
    assert revised.loc["F019", "is_preferred"] and not revised.loc["F042", "is_preferred"]  # 5,092 over 5,024
    assert set(view.figures["figure_id"]).isdisjoint(view.excluded["figure_id"])
