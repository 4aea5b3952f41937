"""The per-article trend report built on a synthetic ledger: its sections, figures, escaping."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from milcourts import paths
from milcourts.build import BuildSettings, build
from milcourts.ledger import LEDGER_COLUMNS
from milcourts.synthetic import aggregate_pattern, default_truth, publish, simulate_counts

INJECTED = '<script>alert("x")</script> & <b>bold</b>'


@pytest.mark.slow
def test_trend_report_on_a_synthetic_ledger(tmp_path):
    truth = default_truth()
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(4)), aggregate_pattern(months_2024=True))
    ledger.loc[0, "source_title"] = INJECTED
    ledger_csv = tmp_path / "synthetic.csv"
    frame = ledger[list(LEDGER_COLUMNS)].copy()
    for column in ("period_start", "period_end", "source_date"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    frame["value"] = frame["value"].map(lambda v: f"{v:.0f}")
    frame.to_csv(ledger_csv, index=False)
    (tmp_path / "notebooks").mkdir()
    shutil.copy(paths.NOTEBOOKS_DIR / "02-filings-trend.ipynb", tmp_path / "notebooks")
    run_file = tmp_path / "reports.yaml"
    run_file.write_text(yaml.safe_dump({"reports": [{
        "name": "trend-337", "notebook": "notebooks/02-filings-trend.ipynb", "title": "Synthetic AWOL",
        "parameters": {"article": "337", "ledger_csv": str(ledger_csv), "forecast_months": 3}}]}))
    settings = BuildSettings(run_file=run_file, root=tmp_path, reports_dir=tmp_path / "reports",
                             build_dir=tmp_path / "build", make_pdf=False)
    build(settings=settings)
    html = (settings.reports_dir / "trend-337.html").read_text(encoding="utf-8")
    for section in ("Key findings", "Monthly cases", "Effects with their intervals", "How much the results depend",
                    "without the latest knot", "Poisson month counts", "Working days as exposure", "How well the model fits",
                    "Validation on figures the model had not seen", "Methods and limitations", "Sources"):
        assert section in html, section
    assert "AWOL (Art. 337) cases reaching military courts grew by" in html
    assert html.count('<figure class="report-figure">') == 2  # trend and residuals; no validation for this ledger
    assert "Validation results are not available" in html    # the real ledger's results are not shown
    # shown as text (the exporter may write the quotes back literally; they are harmless in text)
    assert "&lt;script&gt;alert(" in html and "&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "hl-ipython3" not in html and "run_trend_analysis" not in html
    assert 'href="https://example.org/"' in html  # source links are links
