"""From the constraint view to the arrays the likelihood reads, and the design of the log rate.

Figure by figure it is decided whether and how a figure enters the likelihood (observed, an
earlier vintage conditioned on a later one, or set aside, each with the reason), and where it
sits in the months. The design matrix holds the log-rate terms: pre-break trend, step at the
break, and hinges at the knots after it; forecast months continue a damped slope.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from milcourts.inputs.constraints import ConstraintView
from milcourts.inputs.exposure import month_exposure
from milcourts.model.spec import (
    COMPLETE_AFTER_DAYS,
    FORECAST_METHODS,
    MOBILISATION_BASE_EARLY_MONTHS,
    MOBILISATION_BASE_START,
    PROVISIONAL_WITHIN_DAYS,
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
    release_dates: np.ndarray = field(default_factory=lambda: np.zeros(0, "datetime64[D]"))  # fit figures

    @property
    def is_provisional(self) -> np.ndarray:
        """(months,) reached by the figures of a single release, published within
        PROVISIONAL_WITHIN_DAYS of the month's end: a nowcast no later release has checked."""
        return provisional_months(self.months, self.weights, self.release_dates)

    def with_values(self, values: np.ndarray) -> Observations:
        """The same figures with other values (one per fitted figure, in this order): a simulated
        replicate of the pattern. How each figure enters the likelihood stays the template's: for
        one consistent series (no conflicts to set anything aside) it follows from the figures'
        dates, qualifiers and periods; a test checks it against preparing a replicate from scratch."""
        values = np.asarray(values, float)
        if values.shape != self.value.shape:
            raise ValueError(f"expected {self.value.shape[0]} values (one per fitted figure), got {values.shape}")
        figures = self.figures.copy()
        figures.loc[figures["is_used"].to_numpy(), "value"] = values
        return replace(self, figures=figures, value=values)

    @property
    def pinned_end(self) -> int:
        """Index after the last month that is not provisional (0 if every month is)."""
        pinned = np.nonzero(~self.is_provisional)[0]
        return int(pinned[-1]) + 1 if len(pinned) else 0


def provisional_months(months: pd.PeriodIndex, weights: np.ndarray, release_dates: np.ndarray) -> np.ndarray:
    """See Observations.is_provisional."""
    if not len(release_dates):
        return np.zeros(len(months), dtype=bool)
    # a single release reaches a month when the earliest and the latest release reaching it agree
    day = np.asarray(release_dates, "datetime64[D]").astype(np.int64)[:, None]
    reaches = np.asarray(weights) > 0
    earliest = np.where(reaches, day, np.iinfo(np.int64).max).min(axis=0)
    latest = np.where(reaches, day, np.iinfo(np.int64).min).max(axis=0)
    month_end = months.end_time.normalize().to_numpy("datetime64[D]").astype(np.int64)
    return reaches.any(axis=0) & (earliest == latest) & (latest - month_end < PROVISIONAL_WITHIN_DAYS)


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
    revised = used[used.duplicated("revision_group", keep=False)]  # single vintages need no pairing
    for _, group in revised.groupby("revision_group"):
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
    starts = months.start_time.to_numpy("datetime64[D]")
    ends = months.end_time.normalize().to_numpy("datetime64[D]")
    days = month_exposure(months, exposure)  # the rate's unit; partial-month weights stay calendar shares
    n, m = len(fit), len(months)
    weights = view.month_weights.loc[fit["figure_id"]].to_numpy() if n else np.zeros((0, m))
    # figures x months, at once (a loop over figures was a fifth of a simulated replicate's refit)
    first = np.maximum(starts[None, :], fit["period_start"].to_numpy("datetime64[D]")[:, None])
    last = np.minimum(ends[None, :], fit["period_end"].to_numpy("datetime64[D]")[:, None])
    covered = np.clip((last - first).astype(int) + 1, 0, None).astype(float)
    lag_first = (fit["assumed_source_date"].to_numpy("datetime64[D]")[:, None] - last).astype(int).astype(float)
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
        release_dates=fit["assumed_source_date"].to_numpy("datetime64[D]"),
    )


# ----------------------------------------------------------------------------- design

# A knot needs this many modelled months after it, or its slope change rests on one or two figures
# at the edge of the data, where reporting lag also bites.
MIN_MONTHS_AFTER_KNOT = 3
# Forecasts follow the average slope of this many last modelled months (see design_matrix).
FORECAST_SLOPE_MONTHS = 6
# A local-level forecast stays at the average log rate of this many last pinned-down months.
LEVEL_MONTHS = 3
MONTHS_PER_YEAR = 12.0  # slopes are fitted per year (better conditioned) and reported per month


def month_index(months: pd.PeriodIndex, month: str) -> int:
    return int((pd.Period(month, "M") - months[0]).n)


def supported_knots(spec: ModelSpec, n_observed: int, break_index: int) -> tuple[int, ...]:
    return tuple(k for k in spec.knot_offsets_months if break_index + k <= n_observed - MIN_MONTHS_AFTER_KNOT)


def design_matrix(
    n_months: int,
    break_index: int,
    knot_offsets: tuple[int, ...],
    n_observed: int | None = None,
    damping: float = 1.0,
    method: str = "damped_trend",
    pinned_end: int | None = None,
) -> np.ndarray:
    """Columns: intercept, slope (years from the break), step, then one hinge per knot (years).

    Rows past `n_observed` (forecasts) follow `method` (spec.FORECAST_METHODS):
    - "damped_trend": from the last pinned month (before `pinned_end`, the last not provisional)
      along the average slope of its last FORECAST_SLOPE_MONTHS, damped by `damping` per month
      (Gardner-McKenzie): h months after it adds sum_{i<=h} damping^i months of that slope. The
      final segment alone rests on a few under-reported months; compounding its uncertain slope
      made forecast bands explode.
    - "local_level": flat at the average log rate of the LEVEL_MONTHS months before `pinned_end`
      (the last months not provisional), so a dip that a single release shows does not carry on.
    - "combination": the average of the two on the log scale.
    """
    if method not in FORECAST_METHODS:
        raise ValueError(f"forecast method must be one of {', '.join(FORECAST_METHODS)}, got {method!r}")
    t = np.arange(n_months, dtype=float)
    columns = [np.ones(n_months), (t - break_index) / MONTHS_PER_YEAR, (t >= break_index).astype(float)]
    columns += [np.clip(t - (break_index + k), 0, None) / MONTHS_PER_YEAR for k in knot_offsets]
    design = np.column_stack(columns)
    if n_observed is not None and n_observed < n_months:
        # both continue from the last month the ledger pins down: a slope or level read off months
        # only one release reaches (provisional) must not steer the forecast
        end = n_observed if not pinned_end else min(pinned_end, n_observed)
        last = design[end - 1]
        span = min(FORECAST_SLOPE_MONTHS, end - 1)
        slope = (last - design[end - 1 - span]) / max(span, 1)
        h = np.arange(n_observed - end + 1, n_months - end + 1)  # months after the last pinned one
        ahead = damping * (1 - damping**h) / (1 - damping) if damping < 1 else h.astype(float)
        damped = last + ahead[:, None] * slope
        level = design[max(0, end - LEVEL_MONTHS) : end].mean(axis=0)
        design[n_observed:] = {
            "damped_trend": damped,
            "local_level": np.broadcast_to(level, damped.shape),
            "combination": (damped + level) / 2,
        }[method]
    return design
