"""The per-article trend report built on a synthetic ledger: its sections, figures, escaping."""

from __future__ import annotations

import numpy as np
import pytest

from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from tests.conftest import build_report_on_ledger

INJECTED = '<script>alert("x")</script> & <b>bold</b>'


@pytest.mark.slow
def test_trend_report_on_a_synthetic_ledger(tmp_path):
    truth = default_truth()
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(4)), aggregate_pattern(months_2024=True))
    ledger.loc[0, "source_title"] = INJECTED
    html = build_report_on_ledger(
        tmp_path, ledger, "02-filings-trend.ipynb", "trend-337", {"article": "337", "forecast_months": 3}
    )
    for section in (
        "Key findings",
        "Monthly cases",
        "Effects with their intervals",
        "How much the results depend",
        "without the latest knot",
        "Poisson month counts",
        "working days as exposure",
        "How well the model fits",
        "Validation on figures the model had not seen",
        "Methods and limitations",
        "Sources",
    ):
        assert section in html, section
    assert "AWOL (Art. 337) cases reaching military courts grew by" in html
    assert html.count('<figure class="report-figure">') == 2  # trend and residuals; no validation for this ledger
    assert "Validation results are not available" in html  # the real ledger's results are not shown
    # shown as text (the exporter may write the quotes back literally; they are harmless in text)
    assert "&lt;script&gt;alert(" in html and "&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "hl-ipython3" not in html and "run_trend_analysis" not in html
    assert 'href="https://example.org/"' in html  # source links are links
