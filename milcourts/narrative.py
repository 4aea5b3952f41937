"""Sentences generated from computed numbers, so the prose changes when the data does.

No figure in a report is typed by hand: each sentence here is a function of its inputs, and the
tests pin the exact wording for given inputs.
"""

from __future__ import annotations

import pandas as pd

from milcourts.audit import ARTICLE_LABELS, LedgerAudit


def format_count(value: float) -> str:
    """12,345 style, no decimals: every count in the ledger is whole."""
    return f"{value:,.0f}"


def format_date(moment: pd.Timestamp) -> str:
    """5 December 2023: day without a leading zero, month in words, unambiguous in any locale."""
    return f"{moment.day} {moment:%B %Y}"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    return f"{format_count(n)} {word if n == 1 else (plural_form or word + 's')}"


def describe_ledger(audit: LedgerAudit) -> list[str]:
    """Key facts about the ledger, one sentence each."""
    ledger, view = audit.ledger, audit.view
    dated = ledger["source_date"].dropna()
    sentences = [
        f"The ledger holds {plural(len(ledger), 'published figure')} from "
        f"{plural(ledger['source_publisher'].nunique(), 'publisher')}, published between "
        f"{format_date(dated.min())} and {format_date(dated.max())}; "
        f"{plural(int(ledger['source_date'].isna().sum()), 'figure has', 'figures have')} no known publication date."
    ]
    filings = ledger[ledger["series"] == view.series]
    by_article = filings["article"].value_counts()
    parts = [f"{ARTICLE_LABELS[a]}: {format_count(by_article[a])}" for a in ARTICLE_LABELS if a in by_article]
    sentences.append(
        f"{plural(len(filings), 'figure')} count {view.series.replace('_', ' ')} ({'; '.join(parts)})."
    )
    sentences.append(
        f"Of these, {plural(len(view.figures), 'figure')} on {view.unit} can be used as sums of the monthly "
        f"series over {plural(len(view.months), 'calendar month')} "
        f"({view.months[0]:%B %Y} to {view.months[-1]:%B %Y}); "
        f"{plural(len(view.excluded), 'figure is', 'figures are')} set aside, each with its reason below."
    )
    groups = view.revisions.groupby("revision_group")["value"]
    if len(groups):
        rises = int((groups.last() > groups.first()).sum())
        sentences.append(
            f"{plural(groups.ngroups, 'period was', 'periods were')} published more than once; "
            f"in {format_count(rises)} of them the latest publication is higher than the first, as expected "
            "when courts post cases late."
        )
    kinds = view.conflicts["kind"].value_counts()
    if len(view.conflicts):
        listed = "; ".join(f"{format_count(n)} {k.replace('_', ' ')}" for k, n in kinds.items())
        sentences.append(
            f"{plural(len(view.conflicts), 'set of figures', 'sets of figures')} cannot all hold on one "
            f"counting base ({listed}); they are listed below and kept, not averaged away."
        )
    else:
        sentences.append("No set of figures contradicts another on the same counting base.")
    return sentences


def describe_timeline_caption(ledger: pd.DataFrame, first_year: int) -> str:
    undated = int((ledger["period_start"].isna() | ledger["period_end"].isna()).sum())
    early = int((ledger["period_start"] < pd.Timestamp(first_year, 1, 1)).sum())
    return (
        f"Every figure in the ledger as a bar from period start to period end, one band per series and "
        f"article, coloured by kind of measure; figures covering a single day are dots. "
        f"{plural(undated, 'figure')} without a published start or end date cannot be drawn; "
        f"{plural(early, 'figure')} starting before {first_year} {'is' if early == 1 else 'are'} drawn from the left edge."
    )


def describe_timeline_alt_text(ledger: pd.DataFrame) -> str:
    drawable = ledger.dropna(subset=["period_start", "period_end"])
    return (
        f"Timeline of {plural(len(drawable), 'published figure')} from "
        f"{drawable['period_start'].min():%Y} to {drawable['period_end'].max():%Y}, grouped by series and "
        "article; most court-filing figures cover 2022 to 2024."
    )


def describe_pattern_caption(view) -> str:
    superseded = int((~view.figures["is_preferred"]).sum())
    return (
        f"Each row is one usable {view.series.replace('_', ' ')} figure on {view.unit}, each column a "
        f"calendar month; shading is the share of the month the figure's period covers. "
        f"{plural(superseded, 'row is an earlier vintage', 'rows are earlier vintages')} of a period "
        "published again later."
    )


def describe_pattern_alt_text(view) -> str:
    single = int((view.month_weights.gt(0).sum(axis=1) == 1).sum())
    return (
        f"Grid of {plural(len(view.figures), 'figure')} by {plural(len(view.months), 'month')}; "
        f"{plural(single, 'figure covers', 'figures cover')} a single month, the rest span several months."
    )
