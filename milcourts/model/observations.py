"""From the constraint view to the arrays the likelihood reads, and the design of the log rate.

Figure by figure it is decided whether and how a figure enters the likelihood (observed, an
earlier vintage conditioned on a later one, or set aside, each with the reason), and where it
sits in the months. The design matrix holds the log-rate terms: pre-break trend, step at the
break, and hinges at the knots after it; forecast months continue a damped slope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from milcourts.inputs.constraints import ConstraintView
from milcourts.inputs.exposure import month_exposure
from milcourts.model.spec import (
    COMPLETE_AFTER_DAYS,
    MOBILISATION_BASE_EARLY_MONTHS,
    MOBILISATION_BASE_START,
    ModelSpec,
    check_month_range,
)
from milcourts.vocabulary import ALL_ARTICLES, ARTICLES


@dataclass
class Observations:
    """The usable figures as arrays the likelihood reads."""

    figures: pd.DataFrame  # one row per figure considered, with usage and reason
    months: pd.PeriodIndex  # modelled months (no forecast)
    days: np.ndarray  # days per month
    weights: np.ndarray  # fit figures x months, share of each month covered
    article_mask: np.ndarray  # fit figures x 3 articles (all-article figures: all ones)
    lag_first: np.ndarray  # fit figures x months: lag in days of the last covered day
    covered_days: np.ndarray  # fit figures x months: number of covered days
    value: np.ndarray
    qualifier: np.ndarray  # "exact" | "approx" | "at_least" | "at_most"
    later_partner: np.ndarray  # index of the later vintage for revision terms, -1 otherwise
    is_mobilisation_base: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # fit figures
    is_early_base_month: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # months
    recent_cells: tuple[np.ndarray, np.ndarray] = (np.array([], int), np.array([], int))


def _median_publication_gap_days(figures: pd.DataFrame) -> float:
    dated = figures[figures["is_vintage_known"]]
    gaps = (dated["source_date"] - dated["period_end"]).dt.days
    return float(gaps.median()) if len(gaps) else 0.0


def prepare_observations(
    view: ConstraintView, train_end: pd.Timestamp | None = None, exposure: str = "calendar_days"
) -> Observations:
    """Decide, figure by figure, whether and how it enters the likelihood, and why."""
    check_month_range(view.figures, view.months)
    figures = view.figures.copy()
    figures["is_used"] = True
    figures["usage"] = "observed"
    figures["reason"] = ""
    if train_end is not None:
        late = (figures["period_end"] > train_end) | (figures["vintage_date"] > train_end)
        figures.loc[late, ["is_used", "usage", "reason"]] = [False, "held out", "published after --train-end"]
    subsets = view.conflicts[view.conflicts["kind"] == "same_period_disagreement"]
    for conflict in subsets.itertuples():
        for fid in conflict.part_figure_ids.split(","):
            mask = figures["figure_id"] == fid
            figures.loc[mask, ["is_used", "usage", "reason"]] = [
                False,
                "set aside",
                f"published the same day as {conflict.whole_figure_id} for the same period with a smaller "
                "value: a narrower counting base",
            ]
    # Earlier vintages of a period become revision terms conditioned on the next later vintage.
    figures["later_figure_id"] = ""
    used = figures[figures["is_used"]]
    for _, group in used.groupby("revision_group"):
        group = group.sort_values(["is_vintage_known", "vintage_date", "value"])
        ordered = list(group.itertuples())
        for early, late in zip(ordered, ordered[1:]):
            if (
                early.value_qualifier == "exact"
                and late.value_qualifier == "exact"
                and early.is_vintage_known
                and early.vintage_date < late.vintage_date
            ):
                figures.loc[early.Index, ["usage", "later_figure_id"]] = ["earlier vintage", late.figure_id]
    gap = _median_publication_gap_days(view.figures)
    figures["assumed_source_date"] = figures["source_date"].fillna(figures["period_end"] + pd.Timedelta(days=gap))
    figures.loc[~figures["is_vintage_known"], "reason"] = (
        f"publication date unknown: completeness evaluated {gap:.0f} days after period end "
        "(median gap of dated figures)"
    )

    fit = figures[figures["is_used"]].reset_index(drop=True)
    months = view.months
    starts = np.array([m.start_time for m in months], dtype="datetime64[D]")
    ends = np.array([m.end_time.normalize() for m in months], dtype="datetime64[D]")
    days = month_exposure(months, exposure)  # the rate's unit; partial-month weights stay calendar shares
    n, m = len(fit), len(months)
    weights = view.month_weights.loc[fit["figure_id"]].to_numpy() if n else np.zeros((0, m))
    lag_first = np.zeros((n, m))
    covered = np.zeros((n, m))
    for i, r in enumerate(fit.itertuples()):
        first = np.maximum(starts, np.datetime64(r.period_start.date(), "D"))
        last = np.minimum(ends, np.datetime64(r.period_end.date(), "D"))
        covered[i] = np.clip((last - first).astype(int) + 1, 0, None)
        lag_first[i] = (np.datetime64(r.assumed_source_date.date(), "D") - last).astype(int)
    mask = np.zeros((n, len(ARTICLES)))
    for i, article in enumerate(fit["article"]):
        if article == ALL_ARTICLES:
            mask[i] = 1
        else:
            mask[i, ARTICLES.index(article)] = 1
    position = {fid: i for i, fid in enumerate(fit["figure_id"])}
    partner = np.array([position.get(f, -1) for f in fit["later_figure_id"]], dtype=int)
    lag_first = np.clip(lag_first, 0, None)
    recent = np.nonzero((covered > 0) & (lag_first < COMPLETE_AFTER_DAYS))
    return Observations(
        figures=figures,
        months=months,
        days=days,
        weights=weights,
        article_mask=mask,
        lag_first=lag_first,
        covered_days=covered,
        value=fit["value"].to_numpy(float),
        qualifier=fit["value_qualifier"].to_numpy(),
        later_partner=partner,
        recent_cells=recent,
        is_mobilisation_base=(fit["period_start"] == MOBILISATION_BASE_START).to_numpy(),
        is_early_base_month=np.asarray(months.isin(MOBILISATION_BASE_EARLY_MONTHS)),
    )


# ----------------------------------------------------------------------------- design

# A knot needs this many modelled months after it, or its slope change rests on one or two figures
# at the edge of the data, where reporting lag also bites.
MIN_MONTHS_AFTER_KNOT = 3
# Forecasts follow the average slope of this many last modelled months (see design_matrix).
FORECAST_SLOPE_MONTHS = 6
MONTHS_PER_YEAR = 12.0  # slopes are fitted per year (better conditioned) and reported per month


def month_index(months: pd.PeriodIndex, month: str) -> int:
    return int((pd.Period(month, "M") - months[0]).n)


def supported_knots(spec: ModelSpec, n_observed: int, break_index: int) -> tuple[int, ...]:
    return tuple(k for k in spec.knot_offsets_months if break_index + k <= n_observed - MIN_MONTHS_AFTER_KNOT)


def design_matrix(
    n_months: int, break_index: int, knot_offsets: tuple[int, ...], n_observed: int | None = None, damping: float = 1.0
) -> np.ndarray:
    """Columns: intercept, slope (years from the break), step, then one hinge per knot (years).

    Rows past `n_observed` (forecasts) continue from the last modelled month along the average
    slope of the last FORECAST_SLOPE_MONTHS, damped by `damping` per month (Gardner-McKenzie):
    h months ahead adds sum_{i<=h} damping^i months of that slope. The final segment alone rests
    on a few under-reported months; compounding its uncertain slope made forecast bands explode.
    """
    t = np.arange(n_months, dtype=float)
    columns = [np.ones(n_months), (t - break_index) / MONTHS_PER_YEAR, (t >= break_index).astype(float)]
    columns += [np.clip(t - (break_index + k), 0, None) / MONTHS_PER_YEAR for k in knot_offsets]
    design = np.column_stack(columns)
    if n_observed is not None and n_observed < n_months:
        last = design[n_observed - 1]
        span = min(FORECAST_SLOPE_MONTHS, n_observed - 1)
        slope = (last - design[n_observed - 1 - span]) / span
        h = np.arange(1, n_months - n_observed + 1)
        ahead = damping * (1 - damping**h) / (1 - damping) if damping < 1 else h.astype(float)
        design[n_observed:] = last + ahead[:, None] * slope
    return design
