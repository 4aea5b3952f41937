"""The sources appendix: each figure once with a source number, each publication once."""

from __future__ import annotations

import pandas as pd

from milcourts.views.trend import sources_for


def ledger_rows() -> pd.DataFrame:
    common = {
        "series": "court_filings",
        "measure": "count",
        "period_start": pd.Timestamp("2023-01-01"),
        "period_end": pd.Timestamp("2023-12-31"),
    }
    return pd.DataFrame(
        [
            {
                **common,
                "figure_id": "F2",
                "article": "337",
                "value": 5092.0,
                "value_qualifier": "exact",
                "source_publisher": "Mediazona",
                "source_date": pd.Timestamp("2024-03-01"),
                "source_title": "A year",
                "source_url": "https://zona.media/a",
            },
            {
                **common,
                "figure_id": "F1",
                "article": "338",
                "value": 156.0,
                "value_qualifier": "approx",
                "source_publisher": "Mediazona",
                "source_date": pd.Timestamp("2024-03-01"),
                "source_title": "A year",
                "source_url": "https://zona.media/a",
            },
            {
                **common,
                "figure_id": "F3",
                "article": "all_refusal",
                "value": 1000.0,
                "value_qualifier": "at_least",
                "source_publisher": "Earlier outlet",
                "source_date": pd.Timestamp("2023-06-01"),
                "source_title": "Spring",
                "source_url": None,
            },
            {
                **common,
                "figure_id": "F4",
                "series": "help_requests",
                "article": "na",
                "value": 577.0,
                "value_qualifier": "exact",
                "source_publisher": "Undated outlet",
                "source_date": pd.NaT,
                "source_title": "No date",
                "source_url": "https://example.org/b",
            },
        ]
    )


def test_figures_are_listed_by_id_once_and_share_the_number_of_their_publication():
    # the appendix's caption says "by figure id": a reader looks an id up, so the order is the id's
    figures, publications = sources_for(ledger_rows(), ["F2", "F1", "F3", "F4", "F2"])
    assert list(figures["figure"]) == ["F1", "F2", "F3", "F4"]
    assert list(figures["source"]) == ["[2]", "[2]", "[1]", "[3]"]  # numbered by publication date, undated last
    assert list(figures["counts"]) == ["Art. 338 cases", "Art. 337 cases", "Arts. 332, 337, 338 cases", "help requests"]
    assert list(figures["period"])[0] == "2023-01-01 – 2023-12-31"
    assert list(figures["published value"]) == ["about 156", "5,092", "at least 1,000", "577"]
    assert list(publications["source"]) == ["[1]", "[2]", "[3]"]
    assert list(publications["publisher"]) == ["Earlier outlet", "Mediazona", "Undated outlet"]
    assert list(publications["published"]) == ["2023-06-01", "2024-03-01", "date unknown"]
    assert list(publications["link"]) == ["", "https://zona.media/a", "https://example.org/b"]


def test_only_the_publications_of_the_figures_used_are_listed():
    figures, publications = sources_for(ledger_rows(), ["F3"])
    assert list(figures["source"]) == ["[1]"]
    assert list(publications["title"]) == ["Spring"]


def test_the_reference_list_escapes_ledger_text_and_links_only_urls(monkeypatch):
    from milcourts.views import reporting

    shown = []
    monkeypatch.setattr(reporting, "display", lambda html: shown.append(html.data))
    ledger = ledger_rows()
    ledger.loc[0, "source_title"] = '<script>alert("x")</script>'
    ledger.loc[1, "source_title"] = '<script>alert("x")</script>'
    ledger.loc[2, "source_url"] = "javascript:alert(1)"
    reporting.show_sources(sources_for(ledger, ["F2", "F1", "F3"]))
    references = shown[-1]
    assert "<script>" not in references and "&lt;script&gt;" in references
    assert 'href="javascript' not in references  # not a link, shown as text
    assert '<a href="https://zona.media/a">https://zona.media/a</a>' in references
    assert references.count('class="report-reference"') == 2  # one line per publication


def test_dates_in_tables_stay_on_one_line_and_links_are_untouched(monkeypatch):
    from milcourts.views import reporting

    shown = []
    monkeypatch.setattr(reporting, "display", lambda html: shown.append(html.data))
    frame = pd.DataFrame(
        {
            "period": ["2023-06-01 – 2023-08-31"],
            "month": ["2024-03"],
            "link": ["https://example.org/2023-06-01/a"],
            "text": ["<b>2023-06-01</b>"],
        }
    )
    reporting.show_table(frame, link_columns=("link",))
    table = shown[-1]
    assert '<span class="report-date">2023-06-01</span> – <span class="report-date">2023-08-31</span>' in table
    assert '<span class="report-date">2024-03</span>' in table
    assert 'href="https://example.org/2023-06-01/a"' in table  # the attribute is left alone
    assert '&lt;b&gt;<span class="report-date">2023-06-01</span>&lt;/b&gt;' in table  # escaped, then wrapped
