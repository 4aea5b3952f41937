"""What the ledger holds: the tables behind the ledger-audit report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from milcourts import paths
from milcourts.inputs.constraints import ConstraintView, build_constraint_view
from milcourts.inputs.ledger import load_ledger
from milcourts.products import public
from milcourts.vocabulary import COURT_FILINGS, MEASURE_WORDS, QUALIFIER_WORDS, SERIES_WORDS, article_label  # noqa: F401 (QUALIFIER_WORDS: for the notebook)

MEASURE_FAMILIES = {
    "count": "count in period",
    "cumulative": "running total",
    "count_persons": "persons",
    "cumulative_persons": "persons",
    "daily_rate": "rate",
    "weekly_rate": "rate",
    "monthly_rate": "rate",
    "share": "share or change",
    "pct_change": "share or change",
    "ratio_vs_prior_year": "share or change",
    "count_helped": "Idite Lesom help",
    "cumulative_helped": "Idite Lesom help",
    "cumulative_advised": "Idite Lesom help",
    "cumulative_counseled": "Idite Lesom help",
}


@dataclass
class LedgerAudit:
    ledger_csv: Path
    ledger: pd.DataFrame
    view: ConstraintView


def load_audit(
    ledger_csv: str | Path = paths.LEDGER_CSV, series: str = COURT_FILINGS, first_month: str = "2021-01"
) -> LedgerAudit:
    """Validated ledger plus the constraint view of `series` on cases."""
    path = paths.resolve(ledger_csv)
    ledger = load_ledger(path)
    return LedgerAudit(path, ledger, build_constraint_view(ledger, series=series, first_month=first_month))


def count_table(ledger: pd.DataFrame, column: str, label: str, words: dict[str, str] | None = None) -> pd.DataFrame:
    values = ledger[column].map(words) if words else ledger[column]
    counts = values.value_counts().rename_axis(label).reset_index(name="figures")
    return counts.sort_values(["figures", label], ascending=[False, True]).reset_index(drop=True)


def series_by_article(ledger: pd.DataFrame) -> pd.DataFrame:
    table = pd.crosstab(
        ledger["series"].map(SERIES_WORDS),
        ledger["article"].map(lambda a: article_label(a, capitalised=True)),
        margins=True,
        margins_name="total",
    )
    table.index.name, table.columns.name = "what is counted", None
    return table


def revisions_table(view: ConstraintView) -> pd.DataFrame:
    table = view.revisions.copy()
    table["period"] = table["period_start"].dt.date.astype(str) + " to " + table["period_end"].dt.date.astype(str)
    table["article"] = table["article"].map(lambda a: article_label(a, capitalised=True))
    table["source_date"] = table["source_date"].dt.date.astype("string")
    table["preferred"] = table["is_preferred"].map({True: "yes", False: ""})
    table["value_qualifier"] = table["value_qualifier"].map(QUALIFIER_WORDS)
    table = table[["article", "period", "figure_id", "value", "value_qualifier", "source_date", "preferred"]]
    return table.rename(
        columns={
            "figure_id": "figure",
            "value_qualifier": "as published",
            "source_date": "published on",
            "preferred": "latest release",
        }
    )


def conflicts_table(view: ConstraintView) -> pd.DataFrame:
    kinds = {
        "parts_exceed_whole": "parts exceed whole",
        "same_period_disagreement": "same period, same date, different values",
        "downward_revision": "later vintage lower",
        "within_release_disagreement": "one release, running total against its own period totals",
    }
    table = view.conflicts.assign(kind=view.conflicts["kind"].map(kinds))
    table = table[["kind", "whole_figure_id", "part_figure_ids", "excess", "description"]]
    return table.rename(
        columns={
            "kind": "what",
            "whole_figure_id": "figure contradicted",
            "part_figure_ids": "figures that contradict it",
            "excess": "by (cases)",
            "description": "in words",
        }
    )


def excluded_table(view: ConstraintView) -> pd.DataFrame:
    table = view.excluded.copy()
    table["article"] = table["article"].map(lambda a: article_label(a, capitalised=True))
    table["measure"] = table["measure"].map(MEASURE_WORDS)
    table = table[["figure_id", "article", "measure", "value", "exclusion_reason"]]
    return table.rename(
        columns={"figure_id": "figure", "measure": "what it counts", "exclusion_reason": "why set aside"}
    )


def data_package(audit: LedgerAudit) -> public.DataPackage:
    """The ledger itself, republished with its schema, and the contradictions it holds."""
    return public.DataPackage(
        name="milcourts-ledger",
        title="Published figures on prosecutions for refusing to fight",
        description=(
            "Every published number the reports rest on, with its source and a verbatim quote, and the "
            "sets of court-filing figures that contradict each other."
        ),
        tables=(
            (public.LEDGER, public.public_frame(public.LEDGER, {"ledger": audit.ledger})),
            (public.CONTRADICTIONS, public.public_frame(public.CONTRADICTIONS, {"conflicts": audit.view.conflicts})),
        ),
        sources=tuple(public.sources_of(audit.ledger)),
    )
