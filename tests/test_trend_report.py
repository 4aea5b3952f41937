"""The per-article trend report built on a synthetic ledger: its sections, figures, escaping."""

from __future__ import annotations

import re

import numpy as np
import pytest

from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from tests.conftest import build_report_on_ledger
from tests.test_readers import identifiers_in, jargon_in

INJECTED = '<script>alert("x")</script> & <b>bold</b>'


@pytest.mark.slow
def test_trend_report_on_a_synthetic_ledger(tmp_path):
    truth = default_truth()
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(4)), aggregate_pattern(months_2024=("337",)))
    ledger.loc[0, "source_title"] = INJECTED
    html = build_report_on_ledger(
        tmp_path, ledger, "02-filings-trend.ipynb", "trend-337", {"article": "337", "forecast_months": 3}
    )
    for section in (
        "AWOL (Art. 337): how many cases, and is it rising?",
        "How to read and cite these numbers",
        "Month by month",
        "The change at the mobilisation",
        "How much the results depend",
        "without the latest knot",
        "Poisson month counts",
        "working days as exposure",
        "How closely the model follows each published figure",
        "How this was estimated",
        "Data",
        "Sources",
    ):
        assert section in html, section
    # page one: the first finding states the latest full year's level with its range, the table beside it
    first = re.search(
        r"<p>(Military courts received about [\d,]+ \([\d,]+ to [\d,]+\) AWOL \(Art\. 337\) "
        r"cases in 2024;[^<]*)</p>",
        html,
    )
    assert first, "the first finding states the latest full year with its range"
    assert html.index(first.group(1)) < html.index("Month by month")
    assert "cases received (model estimate and range)" in html
    assert html.count('<figure class="report-figure">') == 2  # trend and residuals
    assert 'href="04-methods.html"' in html and 'href="01-ledger-audit.html"' in html
    assert identifiers_in(html) == [], identifiers_in(html)
    assert jargon_in(html) == [], jargon_in(html)
    # shown as text (the exporter may write the quotes back literally; they are harmless in text)
    assert "&lt;script&gt;alert(" in html and "&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "hl-ipython3" not in html and "run_trend_analysis" not in html
    assert 'href="https://example.org/"' in html  # source links are links
