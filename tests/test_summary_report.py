"""The summary report built on a synthetic ledger: sections, charts, computed findings, escaping."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from milcourts import paths
from milcourts.build import BuildSettings, build
from milcourts.ledger import LEDGER_COLUMNS
from milcourts.synthetic import aggregate_pattern, default_truth, publish, simulate_counts

INJECTED = '<script>alert("x")</script> & <b>bold</b>'


def _help_rows() -> pd.DataFrame:
    """Idite Lesom-like request counts: single months and a three-month total containing one of them."""
    rows = [("F901", "2023-01-01", "2023-01-31", 30), ("F902", "2023-03-01", "2023-05-31", 150),
            ("F903", "2023-04-01", "2023-04-30", 48), ("F904", "2023-07-01", "2023-07-31", 90),
            ("F905", "2023-10-01", "2023-10-31", 160), ("F906", "2023-12-01", "2023-12-31", 210)]
    frame = pd.DataFrame(rows, columns=["figure_id", "period_start", "period_end", "value"])
    frame["series"], frame["article"], frame["measure"], frame["value_qualifier"] = "help_requests", "na", "count", "exact"
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
    filings = publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern(months_2024=True))
    ledger = pd.concat([filings, _help_rows()], ignore_index=True)
    ledger_csv = tmp_path / "synthetic.csv"
    frame = ledger[list(LEDGER_COLUMNS)].copy()
    for column in ("period_start", "period_end", "source_date"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    frame["value"] = frame["value"].map(lambda v: f"{v:.0f}")
    frame.to_csv(ledger_csv, index=False)
    (tmp_path / "notebooks").mkdir()
    shutil.copy(paths.NOTEBOOKS_DIR / "03-summary.ipynb", tmp_path / "notebooks")
    run_file = tmp_path / "reports.yaml"
    run_file.write_text(yaml.safe_dump({"reports": [{
        "name": "summary", "notebook": "notebooks/03-summary.ipynb", "title": "Synthetic summary",
        "parameters": {"ledger_csv": str(ledger_csv), "max_lag_months": 3}}]}))
    settings = BuildSettings(run_file=run_file, root=tmp_path, reports_dir=tmp_path / "reports",
                             build_dir=tmp_path / "build", make_pdf=False)
    build(settings=settings)
    html = (settings.reports_dir / "summary.html").read_text(encoding="utf-8")
    for section in ("Key findings", "The three articles side by side", "all-articles cross-check",
                    "Requests for help to desert against court filings", "Lead or lag", "Methods and limitations",
                    "Sources", "Help-request figures in the ledger"):
        assert section in html, section
    assert "military courts received an estimated" in html
    assert "Refitted without the 2 figures published for the three articles together" in html
    assert "Requests for help to desert received by Idite Lesom grew by" in html
    assert "F902 − F903" in html  # the three-month total made disjoint
    assert html.count('<figure class="report-figure">') == 3  # side by side, cross-check, requests
    assert "&lt;script&gt;alert(" in html and "<script>alert" not in html and "<b>bold</b>" not in html
    assert "hl-ipython3" not in html and "run_summary" not in html
    assert 'href="index.html"' in html  # the way back to every other report
