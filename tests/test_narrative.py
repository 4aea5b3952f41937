"""Generated sentences, pinned word for word for a tiny ledger with known counts."""

from __future__ import annotations

import pandas as pd

from milcourts.audit import load_audit
from milcourts.narrative import describe_ledger, describe_timeline_caption, format_count, format_date, plural
from tests.conftest import row


def test_formatting_helpers():
    assert format_count(10025.0) == "10,025"
    assert format_date(pd.Timestamp("2023-12-05")) == "5 December 2023"
    assert plural(1, "figure") == "1 figure"
    assert plural(2, "period was", "periods were") == "2 periods were"


def test_describe_ledger_exact_sentences(write_ledger):
    path = write_ledger([
        row(figure_id="F001", period_end="2023-12-29", value="5024", source_date="2023-12-29"),
        row(figure_id="F002", value="5092", source_date="2024-03-04"),
        row(figure_id="F003", article="338", value="156"),
        row(figure_id="F004", article="all_refusal", value="5000", source_date="2024-12-27",
            source_publisher="Other outlet"),
        row(figure_id="F005", measure="share", value="88", source_date=""),
        row(figure_id="F006", series="help_requests", article="na", value="577"),
    ])
    sentences = describe_ledger(load_audit(path))
    assert sentences == [
        "The ledger holds 6 published figures from 2 publishers, published between 29 December 2023 and "
        "27 December 2024; 1 figure has no known publication date.",
        "5 figures count court filings (Art. 337 (AWOL): 3; Art. 338 (desertion): 1; All refusal articles: 1).",
        "Of these, 4 figures on cases can be used as sums of the monthly series over 36 calendar months "
        "(January 2021 to December 2023); 1 figure is set aside, each with its reason below.",
        "1 period was published more than once; in 1 of them the latest publication is higher than the first, "
        "as expected when courts post cases late.",
        "1 set of figures cannot all hold on one counting base (1 parts exceed whole); they are listed below "
        "and kept, not averaged away.",
    ]


def test_timeline_caption_counts_undrawable_and_early_figures(write_ledger):
    path = write_ledger([row(), row(figure_id="F002", period_end="", source_date=""),
                         row(figure_id="F003", period_start="2010-01-01", period_end="2010-12-31",
                             source_date="2011-01-01")])
    caption = describe_timeline_caption(load_audit(path).ledger, first_year=2020)
    assert caption.endswith("1 figure without a published start or end date cannot be drawn; "
                            "1 figure starting before 2020 is drawn from the left edge.")
