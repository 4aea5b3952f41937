"""The summary report built on a synthetic ledger: sections, charts, computed findings, escaping."""

from __future__ import annotations

import json

import frictionless
import numpy as np
import pandas as pd
import pytest

from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.views.narrative import format_estimate
from tests.conftest import build_report_on_ledger
from tests.test_readers import identifiers_in, jargon_in

INJECTED = '<script>alert("x")</script> & <b>bold</b>'


def _help_rows() -> pd.DataFrame:
    """Idite Lesom-like request counts: single months and a three-month total containing one of them."""
    rows = [
        ("F901", "2023-01-01", "2023-01-31", 30),
        ("F902", "2023-03-01", "2023-05-31", 150),
        ("F903", "2023-04-01", "2023-04-30", 48),
        ("F904", "2023-07-01", "2023-07-31", 90),
        ("F905", "2023-10-01", "2023-10-31", 160),
        ("F906", "2023-12-01", "2023-12-31", 210),
    ]
    frame = pd.DataFrame(rows, columns=["figure_id", "period_start", "period_end", "value"])
    frame["series"], frame["article"], frame["measure"], frame["value_qualifier"] = (
        "help_requests",
        "na",
        "count",
        "exact",
    )
    frame["source_publisher"], frame["source_title"] = "Synthetic outlet", "Requests"
    frame["source_url"], frame["source_date"] = "https://example.org/requests", "2024-01-15"
    frame["quote"], frame["notes"] = "synthetic", ""
    frame.loc[0, "source_title"] = INJECTED
    for column in ("period_start", "period_end", "source_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


@pytest.mark.slow
def test_summary_report_on_a_synthetic_ledger(tmp_path):
    truth = default_truth()
    filings = publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern(months_2024=("337",)))
    ledger = pd.concat([filings, _help_rows()], ignore_index=True)
    html = build_report_on_ledger(tmp_path, ledger, "03-summary.ipynb", "summary", {"max_lag_months": 3})
    for section in (
        "The three articles: how many cases, and is it rising?",
        "How to read and cite these numbers",
        "The three articles month by month",
        "Do the three articles add up?",
        "Requests for help to desert against court filings",
        "Do requests lead filings?",
        "How this was estimated",
        "Data",
        "Sources",
    ):
        assert section in html, section
    assert "Military courts received about" in html and "in 2024;" in html
    assert "Fitted again without the 2 figures published for the three articles together" in html
    assert "Requests for help to desert received by Idite Lesom grew by" in html
    assert "F902" not in html.split("Sources")[0]  # ids only in the sources appendix
    assert html.count('<figure class="report-figure">') == 3  # side by side, cross-check, requests
    assert identifiers_in(html) == [], identifiers_in(html)
    assert jargon_in(html) == [], jargon_in(html)
    assert "&lt;script&gt;alert(" in html and "<script>alert" not in html and "<b>bold</b>" not in html
    assert "hl-ipython3" not in html and "run_summary" not in html
    assert 'href="index.html"' in html  # the way back to every other report
    # its data: a valid package, linked, listed; the yearly totals it states are sums of the monthly rows
    data = tmp_path / "reports" / "summary-data"
    assert frictionless.validate(str(data / "datapackage.json")).valid
    monthly = pd.read_csv(data / "monthly_filings.csv", dtype={"article": str})
    yearly = pd.read_csv(data / "yearly_totals.csv", dtype={"article": str})
    for article in ("337", "338", "332", "all_refusal"):
        rows = monthly[(monthly["article"] == article) & monthly["month"].str.startswith("2024-")]
        assert len(rows) == 12
        year = yearly[(yearly["article"] == article) & (yearly["year"] == 2024)].iloc[0]
        assert rows["cases_expected"].sum() == pytest.approx(year["cases_expected"], abs=0.06)
        # the page-one table states the sum of the published rows, rounded by the one rounding rule
        stated = format_estimate(rows["cases_expected"].sum(), year["cases_lower_95"], year["cases_upper_95"])
        assert stated in html, (article, stated)
    assert 'href="summary-data/monthly_filings.csv"' in html
    manifest = json.loads((tmp_path / "reports" / "manifest.json").read_text())
    listed = manifest["reports"]["summary"]["outputs"]
    assert {"summary-data/monthly_filings.csv", "summary-data/datapackage.json"} <= set(listed)
    index = (tmp_path / "reports" / "index.html").read_text()
    assert 'href="summary-data/monthly_filings.csv"' in index
