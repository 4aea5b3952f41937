"""Every run in reports.yaml builds from data/raw into a scratch reports/ with HTML and PDF."""

from __future__ import annotations

import json
import unicodedata

import pypdf
import pytest

from milcourts.build.incremental import BuildSettings
from milcourts.build.pipeline import build
from milcourts.build.runfile import load_runs


@pytest.mark.slow
def test_every_report_builds_without_code_or_stray_output(tmp_path):
    settings = BuildSettings(reports_dir=tmp_path / "reports", build_dir=tmp_path / "build")
    entries = build(settings=settings)
    runs = load_runs()
    assert [e["name"] for e in entries] == [r.name for r in runs]
    for run in runs:
        html = (settings.reports_dir / f"{run.name}.html").read_text(encoding="utf-8")
        assert 'hl-ipython3' not in html  # code inputs would be highlighted with this class
        assert "import milcourts" not in html and "from milcourts" not in html
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html and "Traceback" not in html
        assert "<figcaption>" in html and 'aria-label="' in html       # charts carry caption and alt text
        pdf = pypdf.PdfReader(settings.reports_dir / f"{run.name}.pdf")
        text = " ".join(unicodedata.normalize("NFKC", p.extract_text()) for p in pdf.pages)  # unfold ligatures
        assert run.title in " ".join(unicodedata.normalize("NFKC", pdf.pages[0].extract_text()).split())
        assert "reporting.show" not in text and "ledger_audit =" not in text
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    assert set(manifest["reports"]) == {r.name for r in runs}
