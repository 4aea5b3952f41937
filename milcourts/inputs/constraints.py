"""Published figures as linear aggregates of the unknown monthly series.

No monthly table of court filings exists; every usable figure says "the months in my period add up
to my value". This module turns each figure into weights over calendar months (a partial month gets
the share of its days the period covers), groups the vintages of one period so a model can prefer
the latest without averaging them, and lists the figures that cannot all be true together rather
than dropping any of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from milcourts.vocabulary import ALL_ARTICLES, ARTICLES, COURT_FILINGS, MOBILISATION

# Measures that are flows over [period_start, period_end]: a running total is a count from its start.
FLOW_MEASURES = {
    "cases": ("count", "cumulative"),
    "persons": ("count_persons", "cumulative_persons"),
}
# Qualifiers that bound a value from below (usable as a part) or from above (usable as a whole)
# with certainty. "approx" bounds nothing for sure, so it never makes a hard conflict.
LOWER_BOUND_QUALIFIERS = ("exact", "at_least")
UPPER_BOUND_QUALIFIERS = ("exact", "at_most")
# Ends this close are one period: "2023 as of 29 Dec" and "2023" differ only by the as-of cut.
REVISION_END_TOLERANCE_DAYS = 3


@dataclass
class ConstraintView:
    """Figures of one series and unit, ready to model; see build_constraint_view for the rules."""

    series: str
    unit: str
    figures: pd.DataFrame
    month_weights: pd.DataFrame  # figure_id x calendar month (Period[M]); weight in [0, 1]
    excluded: pd.DataFrame
    revisions: pd.DataFrame
    conflicts: pd.DataFrame
    months: pd.PeriodIndex = field(repr=False, default=None)

    def weights_long(self) -> pd.DataFrame:
        """One row per (figure, month) with a non-zero weight; the form written to CSV."""
        long = self.month_weights.stack().rename("weight").reset_index()
        long.columns = ["figure_id", "month", "weight"]
        long = long[long["weight"] > 0]
        long["month"] = long["month"].astype(str)
        return long.reset_index(drop=True)


def month_weights(period_start: pd.Timestamp, period_end: pd.Timestamp) -> dict[pd.Period, float]:
    """Share of each calendar month's days that the inclusive period [start, end] covers.

    Filings are modelled per calendar month; a figure covering 21-30 September adds 10/30 of
    September's expected count. Days in the month (28, 29, 30 or 31) come from the calendar, so
    leap years are handled by construction.
    """
    start, end = pd.Timestamp(period_start).normalize(), pd.Timestamp(period_end).normalize()
    if end < start:
        raise ValueError(f"period_end {end.date()} is before period_start {start.date()}")
    return dict(_month_weights(start, end))


@functools.lru_cache(maxsize=4096)
def _month_weights(start: pd.Timestamp, end: pd.Timestamp) -> tuple[tuple[pd.Period, float], ...]:
    """Cached: pandas' calendar arithmetic took a third of each simulated replicate's time, and
    the replicates (and refits) ask for the same few dozen windows again and again."""
    weights = []
    for month in pd.period_range(start.to_period("M"), end.to_period("M"), freq="M"):
        first, last = month.start_time.normalize(), month.end_time.normalize()
        covered = (min(end, last) - max(start, first)).days + 1
        weights.append((month, covered / month.days_in_month))
    return tuple(weights)


def _exclusion_reason(row: pd.Series, unit: str, articles: tuple[str, ...]) -> str | None:
    if row["article"] not in articles:
        return f"article '{row['article']}' is not one of the modelled articles ({', '.join(articles)})"
    if row["measure"] in FLOW_MEASURES[unit]:
        if pd.isna(row["period_start"]) or pd.isna(row["period_end"]):
            missing = "period_start" if pd.isna(row["period_start"]) else "period_end"
            return f"{missing} not published, so the months it covers are unknown"
        return None
    for other_unit, measures in FLOW_MEASURES.items():
        if row["measure"] in measures:
            return f"counts {other_unit}, not {unit}; the two are never mixed in one constraint set"
    return f"measure '{row['measure']}' is not a sum of monthly {unit}"


def _revision_key(frame: pd.DataFrame) -> pd.Series:
    """Label figures that publish the same period, possibly at different vintages.

    Same period = same article, same start, and ends at most REVISION_END_TOLERANCE_DAYS apart
    (chained): a release "as of 29 December" and the later full-year figure describe one calendar
    period, while running totals as of 3 April and 27 April are two different periods.
    """
    keys = pd.Series(index=frame.index, dtype=object)
    ordered = frame.sort_values(["article", "period_start", "period_end"])
    label, previous = None, None
    for index, row in ordered.iterrows():
        same = (
            previous is not None
            and row["article"] == previous["article"]
            and row["period_start"] == previous["period_start"]
            and (row["period_end"] - previous["period_end"]).days <= REVISION_END_TOLERANCE_DAYS
        )
        if not same:
            label = f"{row['article']}|{row['period_start'].date()}|{row['period_end'].date()}"
        keys[index] = label
        previous = row
    return keys


def _mark_vintages(figures: pd.DataFrame) -> pd.DataFrame:
    """Rank vintages within each revision group; the latest publication is preferred.

    A figure with no source_date was published on or after its period_end (the ledger enforces
    source_date >= period_end), which is all that is known; it ranks below any dated vintage.
    Ties on date are broken towards exact figures, then the larger value (a same-day subset such
    as "mobilisation-era parts only" is smaller than the total), then the id, and are also listed
    as conflicts when their values differ.
    """
    figures = figures.copy()
    figures["revision_group"] = _revision_key(figures)
    figures["is_vintage_known"] = figures["source_date"].notna()
    figures["vintage_date"] = figures["source_date"].fillna(figures["period_end"])
    qualifier_rank = figures["value_qualifier"].map({"exact": 0, "at_least": 1, "at_most": 1, "approx": 2})
    order = figures.assign(_q=qualifier_rank).sort_values(
        ["revision_group", "is_vintage_known", "vintage_date", "_q", "value", "figure_id"],
        ascending=[True, False, False, True, False, True],
    )
    order["vintage_rank"] = order.groupby("revision_group").cumcount() + 1
    order["n_vintages"] = order.groupby("revision_group")["figure_id"].transform("size")
    order["is_preferred"] = order["vintage_rank"] == 1
    return order.drop(columns="_q").sort_values("figure_id").reset_index(drop=True)


def _revisions(figures: pd.DataFrame) -> pd.DataFrame:
    multi = figures[figures["n_vintages"] > 1].sort_values(["revision_group", "vintage_date", "figure_id"])
    columns = [
        "revision_group",
        "figure_id",
        "article",
        "period_start",
        "period_end",
        "value",
        "value_qualifier",
        "source_date",
        "is_preferred",
    ]
    return multi[columns].reset_index(drop=True)


def _articles(article: str) -> str:
    return "Arts. 332, 337, 338" if article == ALL_ARTICLES else f"Art. {article}"


def _fmt_period(start: pd.Timestamp, end: pd.Timestamp) -> str:
    return f"{start.date().isoformat()} to {end.date().isoformat()}"


# What the conflict search reads of a figure: rows are read as tuples of these columns only (tuples
# of every column of the ledger cost more than the whole search).
_CONFLICT_COLUMNS = [
    "figure_id",
    "article",
    "measure",
    "value_qualifier",
    "period_start",
    "period_end",
    "value",
    "is_preferred",
    "revision_group",
    "vintage_date",
    "is_vintage_known",
]


def _same_period_conflicts(figures: pd.DataFrame) -> list[dict]:
    """Two hard values for one period and vintage, or a later hard value below an earlier one."""
    conflicts = []
    # grouped in plain Python: a boolean filter and a sort per group took most of a view's time
    groups: dict[str, list] = {}
    hard = figures.loc[figures["value_qualifier"] == "exact", _CONFLICT_COLUMNS].sort_values(
        "vintage_date", kind="stable"
    )
    for row in hard.itertuples(index=False):
        groups.setdefault(row.revision_group, []).append(row)
    for key in sorted(groups):
        rows = groups[key]
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if a.value == b.value:
                    continue
                same_vintage = a.vintage_date == b.vintage_date and a.is_vintage_known == b.is_vintage_known
                if same_vintage:
                    # the larger value is taken as the whole, the smaller as a subset of it
                    kind = "same_period_disagreement"
                    a, b = (a, b) if a.value < b.value else (b, a)
                    text = (
                        f"{_articles(a.article)} {_fmt_period(a.period_start, a.period_end)}: "
                        f"{b.figure_id} = {b.value:,.0f} and {a.figure_id} = {a.value:,.0f} "
                        f"published on the same date; different counting bases?"
                    )
                elif a.is_vintage_known and b.is_vintage_known and b.value < a.value:
                    kind = "downward_revision"
                    text = (
                        f"{_articles(a.article)} {_fmt_period(a.period_start, a.period_end)}: later "
                        f"{b.figure_id} = {b.value:,.0f} ({b.vintage_date.date()}) is below earlier "
                        f"{a.figure_id} = {a.value:,.0f} ({a.vintage_date.date()}); late filings "
                        "only raise counts"
                    )
                else:
                    continue
                conflicts.append(
                    {
                        "kind": kind,
                        "article": a.article,
                        "whole_figure_id": b.figure_id,
                        "part_figure_ids": a.figure_id,
                        "whole_value": b.value,
                        "parts_total": a.value,
                        "excess": a.value - b.value,
                        "description": text,
                    }
                )
    return conflicts


def _best_disjoint_total(parts) -> tuple[float, list[str]]:
    """Largest sum of pairwise disjoint periods (weighted interval scheduling, O(n log n)).
    `parts`: a frame of figures or their rows."""
    rows = parts.itertuples(index=False) if isinstance(parts, pd.DataFrame) else parts
    rows = sorted(rows, key=lambda r: (r.period_end, r.period_start, r.figure_id))
    if not rows:
        return 0.0, []
    ends = [r.period_end for r in rows]
    best: list[tuple[float, list[str]]] = [(0.0, [])]
    for k, row in enumerate(rows):
        # last earlier row ending strictly before this one starts
        j = k - 1
        while j >= 0 and ends[j] >= row.period_start:
            j -= 1
        take_total, take_ids = best[j + 1]
        take = (take_total + row.value, take_ids + [row.figure_id])
        best.append(max(best[-1], take, key=lambda t: t[0]))
    return best[-1]


def _parts_exceed_whole(figures: pd.DataFrame) -> list[dict]:
    """Disjoint parts inside a whole's period that add up to more than the whole.

    Only conflicts that no revision can explain are listed: every part must be a lower bound
    published no later than the whole, which is an upper bound. Counts of cases received only grow
    as late filings arrive, so a later whole on the same base must include all the parts saw.
    For an all-article whole the parts are the best of (all-article parts) and (the sum over the
    articles of each article's best parts), which are disjoint across articles by definition.
    """
    conflicts = []
    # rows in plain Python: four boolean filters of a frame per whole took a third of a view's time
    dated = list(figures.loc[figures["is_vintage_known"], _CONFLICT_COLUMNS].itertuples(index=False))
    wholes = [r for r in dated if r.value_qualifier in UPPER_BOUND_QUALIFIERS]
    lower = [r for r in dated if r.value_qualifier in LOWER_BOUND_QUALIFIERS]
    for whole in wholes:
        inside = [
            r
            for r in lower
            if r.period_start >= whole.period_start
            and r.period_end <= whole.period_end
            and r.vintage_date <= whole.vintage_date
            and r.revision_group != whole.revision_group
        ]

        def best(article, inside=inside):
            return _best_disjoint_total([r for r in inside if r.article == article])

        if whole.article == ALL_ARTICLES:
            options = [best(ALL_ARTICLES)]
            per_article = [best(a) for a in ARTICLES]
            options.append((sum(t for t, _ in per_article), [i for _, ids in per_article for i in ids]))
            total, ids = max(options, key=lambda t: t[0])
        else:
            total, ids = best(whole.article)
        if total > whole.value:
            values = figures.set_index("figure_id").loc[ids, "value"]
            listing = " + ".join(f"{i} ({values[i]:,.0f})" for i in ids)
            conflicts.append(
                {
                    "kind": "parts_exceed_whole",
                    "article": whole.article,
                    "whole_figure_id": whole.figure_id,
                    "part_figure_ids": ",".join(ids),
                    "whole_value": whole.value,
                    "parts_total": total,
                    "excess": total - whole.value,
                    "description": (
                        f"{listing} = {total:,.0f} exceeds {whole.figure_id} = {whole.value:,.0f} "
                        f"({_articles(whole.article)}, {_fmt_period(whole.period_start, whole.period_end)}), "
                        "which was published no earlier; the counting bases must differ"
                    ),
                }
            )
    return conflicts


# A release's running total and its own period totals are reported as disagreeing when what they
# imply for the same period differs by more than this share of the running total (smaller gaps are
# within the rounding and late postings of one release).
WITHIN_RELEASE_TOLERANCE = 0.02


def _covering_estimate(figures: pd.DataFrame, article: str, start: pd.Timestamp, end: pd.Timestamp):
    """Cases in [start, end] for one article from the narrowest preferred exact count covering it,
    pro rata by days; None when no figure covers the whole interval."""
    cover = figures[
        (figures["article"] == article)
        & (figures["measure"] == "count")
        & (figures["value_qualifier"] == "exact")
        & figures["is_preferred"]
        & (figures["period_start"] <= start)
        & (figures["period_end"] >= end)
    ]
    if cover.empty:
        return None
    days = (cover["period_end"] - cover["period_start"]).dt.days + 1
    best = cover.loc[days.idxmin()]
    share = ((end - start).days + 1) / ((best["period_end"] - best["period_start"]).days + 1)
    return float(best["value"] * share), best["figure_id"], share < 1


def _gaps(start: pd.Timestamp, end: pd.Timestamp, parts: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The days of [start, end] that no part covers, as intervals."""
    gaps, cursor = [], start
    for part in parts.sort_values("period_start").itertuples():
        if part.period_start > cursor:
            gaps.append((cursor, part.period_start - pd.Timedelta(days=1)))
        cursor = max(cursor, part.period_end + pd.Timedelta(days=1))
    if cursor <= end:
        gaps.append((cursor, end))
    return gaps


def _likely_cause(start: pd.Timestamp) -> str:
    if start == pd.Timestamp(MOBILISATION):
        return (
            "Likely cause: running totals since the mobilisation count only the parts of the articles the "
            "mobilisation law created, which the model estimates as a share."
        )
    return (
        "Likely cause: the running total and the period totals were counted on different bases (start date, "
        "parts of the articles, or cases merged or returned); the model keeps both and lets each release differ."
    )


def _remainder_estimate(figures: pd.DataFrame, article: str, gaps) -> tuple[float, list[str], bool] | None:
    """Cases in the days no part covers, from earlier figures (per article for all three):
    (total, the figures used, whether any was pro rata), or None when some day has no figure."""
    total, ids, prorated = 0.0, [], False
    for gap_start, gap_end in gaps:
        for member in ARTICLES if article == ALL_ARTICLES else (article,):
            found = _covering_estimate(figures, member, gap_start, gap_end)
            if found is None:
                return None
            total, prorated = total + found[0], prorated or found[2]
            ids.append(found[1])
    return total, ids, prorated


def _within_release_disagreements(figures: pd.DataFrame) -> list[dict]:
    """A release that contradicts itself across counting bases: its running total (for the three
    articles, the sum of its per-article running totals) minus its own period totals inside it
    leaves, for the remaining days, a number that earlier figures for those days do not allow.

    Mediazona's release of 27 December 2024 is the case that prompted it: 15,902 cases since the
    invasion, 5,517 in 2023 and 10,308 in 2024 leave 77 for February to December 2022, when its
    earlier figures counted about a thousand. Nothing is set aside for it; it is reported, with
    its size, for readers and for the model's handling (methods report).
    """
    records = []
    figures = figures[_CONFLICT_COLUMNS]
    dated = figures[figures["is_vintage_known"]]
    for release, group in dated.groupby("vintage_date"):
        running = group[(group["measure"] == "cumulative") & group["value_qualifier"].isin(("exact", "approx"))]
        # the release's exact period totals as rows: filtering the frame for every candidate took
        # most of a view's time, and most candidates have no parts at all
        counts = [r for r in group.itertuples() if r.measure == "count" and r.value_qualifier == "exact"]
        for (start, end), totals in running.groupby(["period_start", "period_end"]):
            by_article = {r.article: r for r in totals.itertuples()}
            candidates = []
            if all(a in by_article and by_article[a].value_qualifier == "exact" for a in ARTICLES):
                candidates.append(
                    (
                        ALL_ARTICLES,
                        sum(by_article[a].value for a in ARTICLES),
                        [by_article[a].figure_id for a in ARTICLES],
                    )
                )
            elif ALL_ARTICLES in by_article:
                whole = by_article[ALL_ARTICLES]
                candidates.append((ALL_ARTICLES, whole.value, [whole.figure_id]))
            candidates += [(a, by_article[a].value, [by_article[a].figure_id]) for a in ARTICLES if a in by_article]
            for article, whole_value, whole_ids in candidates:
                own_rows = [
                    r for r in counts if r.article == article and r.period_start >= start and r.period_end <= end
                ]
                _, part_ids = _best_disjoint_total(own_rows)
                if not part_ids:
                    continue
                own = group.loc[[r.Index for r in own_rows]]
                parts = own[own["figure_id"].isin(part_ids)]
                estimate = _remainder_estimate(figures, article, _gaps(start, end, parts))
                if estimate is None:
                    continue
                remainder, remainder_ids, prorated = estimate
                implied = parts["value"].sum() + remainder
                excess = implied - whole_value
                if abs(excess) <= WITHIN_RELEASE_TOLERANCE * whole_value:
                    continue
                latest = parts.loc[parts["period_end"].idxmax()]
                listing = " + ".join(f"{r.figure_id} ({r.value:,.0f})" for r in parts.itertuples())
                earlier = ", ".join(dict.fromkeys(remainder_ids))
                records.append(
                    {
                        "kind": "within_release_disagreement",
                        "article": article,
                        "whole_figure_id": ",".join(whole_ids),
                        "part_figure_ids": ",".join([*part_ids, *dict.fromkeys(remainder_ids)]),
                        "whole_value": whole_value,
                        "parts_total": implied,
                        "excess": excess,
                        "release_date": pd.Timestamp(release).date().isoformat(),
                        "period_start": latest["period_start"].date().isoformat(),
                        "period_end": latest["period_end"].date().isoformat(),
                        "part_value": float(latest["value"]),
                        "implied_value": float(latest["value"] - excess),
                        "description": (
                            f"Release of {pd.Timestamp(release).date()}: running total {whole_value:,.0f} "
                            f"({'+'.join(whole_ids)}, {_articles(article)}, {_fmt_period(start, end)}) "
                            "against its own "
                            f"{listing} plus {remainder:,.0f} for the remaining days from earlier figures "
                            f"({earlier}{', pro rata by days' if prorated else ''}) = {implied:,.0f}: "
                            f"{abs(excess):,.0f} cases {'more' if excess > 0 else 'fewer'} than the running total. "
                            f"Read against the running total, {latest['figure_id']} would be "
                            f"{latest['value'] - excess:,.0f}. " + _likely_cause(start)
                        ),
                    }
                )
    return records


def find_conflicts(figures: pd.DataFrame) -> pd.DataFrame:
    """All figures that cannot hold together, each with a sentence saying why."""
    records = _same_period_conflicts(figures) + _parts_exceed_whole(figures) + _within_release_disagreements(figures)
    columns = [
        "kind",
        "article",
        "whole_figure_id",
        "part_figure_ids",
        "whole_value",
        "parts_total",
        "excess",
        "description",
        "release_date",
        "period_start",
        "period_end",
        "part_value",
        "implied_value",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def build_constraint_view(
    ledger: pd.DataFrame,
    series: str = COURT_FILINGS,
    articles: tuple[str, ...] = (*ARTICLES, ALL_ARTICLES),
    unit: str = "cases",
    first_month: str | None = "2021-01",
    with_conflicts: bool = True,
) -> ConstraintView:
    """The usable figures of `series` for `articles`, as weights over calendar months.

    Every figure of the series appears exactly once: either in `figures` (with its
    month weights, vintage rank and whether it is the preferred vintage) or in `excluded` with the
    reason. Nothing is averaged or dropped silently; conflicts are listed for the model to handle.
    `with_conflicts=False` skips the conflict search (the slowest step) for ledgers simulated from
    one consistent monthly series, which have none by construction.
    """
    if unit not in FLOW_MEASURES:
        raise ValueError(f"unit must be one of {sorted(FLOW_MEASURES)}, got {unit!r}")
    selected = ledger[ledger["series"] == series].copy()
    selected["exclusion_reason"] = selected.apply(_exclusion_reason, axis=1, unit=unit, articles=articles)
    excluded = selected[selected["exclusion_reason"].notna()][
        ["figure_id", "article", "measure", "value", "value_qualifier", "exclusion_reason"]
    ].reset_index(drop=True)
    usable = selected[selected["exclusion_reason"].isna()].drop(columns="exclusion_reason")
    usable.insert(usable.columns.get_loc("measure") + 1, "unit", unit)
    figures = _mark_vintages(usable)

    per_figure = {
        fid: month_weights(s, e)
        for fid, s, e in zip(figures["figure_id"], figures["period_start"], figures["period_end"])
    }
    if per_figure:
        lo = min(min(w) for w in per_figure.values())
        hi = max(max(w) for w in per_figure.values())
        if first_month is not None:
            lo = min(lo, pd.Period(first_month, "M"))
        months = pd.period_range(lo, hi, freq="M")
    else:
        months = pd.PeriodIndex([], freq="M")
    position = {fid: i for i, fid in enumerate(figures["figure_id"])}
    table = np.zeros((len(figures), len(months)))
    for fid, w in per_figure.items():  # filled as an array: .loc per figure was a tenth of a refit
        table[position[fid], months.get_indexer(list(w))] = list(w.values())
    weights = pd.DataFrame(table, index=pd.Index(figures["figure_id"], name="figure_id"), columns=months)
    weights.columns.name = "month"
    return ConstraintView(
        series=series,
        unit=unit,
        figures=figures,
        month_weights=weights,
        excluded=excluded,
        revisions=_revisions(figures),
        months=months,
        conflicts=find_conflicts(figures) if with_conflicts else find_conflicts(figures.iloc[:0]),
    )
