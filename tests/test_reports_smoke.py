"""Every run in reports.yaml builds from data/raw into a scratch reports/ with HTML and PDF."""

from __future__ import annotations

import functools
import html as html_text
import json
import os
import re
import subprocess
import sys
import unicodedata

import pypdf
import pytest

from milcourts import paths
from milcourts.build.incremental import BuildSettings
from milcourts.build.pipeline import build
from milcourts.build.runfile import load_runs
from milcourts.products import stage
from milcourts.products.public import MAIN_TABLES
from milcourts.vocabulary import METHODS_REPORT
from tests.test_readers import identifiers_in, jargon_in

# The full-posterior check's chains here: 100 adaptation steps and 100 draws each instead of 500
# and 1,000 (about 45 s of processor time less). Its statistics are tested in test_posterior; here
# the stage samples, shares the chains with a worker and carries the result into the methods report.
SHORT_CHAINS = {"warmup": 100, "draws": 100}


@pytest.mark.slow
def test_every_report_builds_without_code_or_stray_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stage, "sample_posterior", functools.partial(stage.sample_posterior, **SHORT_CHAINS))
    settings = BuildSettings(
        reports_dir=tmp_path / "reports", build_dir=tmp_path / "build", processed_dir=tmp_path / "processed"
    )
    entries = build(settings=settings)
    # the fit stage fitted each specification once, before any notebook: the main fit (with its
    # checks), six sensitivity refits and the summary's cross-check; no kernel fitted anything
    log = capsys.readouterr().err
    fitted = re.findall(r"^fit (\S+): ", log, flags=re.MULTILINE)
    assert len(fitted) == 8 and len(set(fitted)) == 8, fitted
    assert sorted(p.name for p in settings.processed_dir.glob("*.csv")) == sorted(f"{t.name}.csv" for t in MAIN_TABLES)
    runs = load_runs()
    assert [e["name"] for e in entries] == [r.name for r in runs]
    for run in runs:
        html = (settings.reports_dir / f"{run.name}.html").read_text(encoding="utf-8")
        assert "hl-ipython3" not in html  # code inputs would be highlighted with this class
        assert "import milcourts" not in html and "from milcourts" not in html
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html and "Traceback" not in html
        assert "<figcaption>" in html and 'aria-label="' in html  # charts carry caption and alt text
        # the text a reader sees, tags stripped (highlighted code would be split over spans): the PDF
        # prints this HTML, so its text is the same (reading all 64 pages of the PDFs took 12.6 s)
        visible = html_text.unescape(re.sub(r"<[^>]+>", "", html))
        assert "reporting.show" not in visible and "ledger_audit =" not in visible
        pdf = pypdf.PdfReader(settings.reports_dir / f"{run.name}.pdf")
        first = " ".join(unicodedata.normalize("NFKC", pdf.pages[0].extract_text()).split())  # unfold ligatures
        assert run.title in first
        if run.notebook.name.startswith(("02-", "03-")):
            # page one says how many, how sure and since when, not only the title
            assert re.search(r"received about [\d,]+ \([\d,]+ to [\d,]+\) .* cases in \d{4}", first), first
        assert "Fitting the model here" not in html  # every fit came from the stage
        assert identifiers_in(html) == [], (run.name, identifiers_in(html))
        if run.name != METHODS_REPORT:  # the technical report may use (and defines) statisticians' words
            assert jargon_in(html) == [], (run.name, jargon_in(html))
    # the methods report describes the check the stage ran, with its chains as run
    methods = (settings.reports_dir / f"{METHODS_REPORT}.html").read_text(encoding="utf-8")
    assert "4 independent chains of 100 draws each" in methods
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    assert set(manifest["reports"]) == {r.name for r in runs}
    # plain papermill, as an analyst runs it: `-p article 338` arrives as the int 338 and is accepted,
    # and the fits the build stored are loaded, not refitted
    executed = tmp_path / "out.ipynb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(paths.NOTEBOOKS_DIR / "02-filings-trend.ipynb"),
            str(executed),
            "-p",
            "article",
            "338",
            "--cwd",
            str(paths.PROJECT_ROOT),
        ],
        env={**os.environ, "MILCOURTS_PROCESSED_DIR": str(settings.processed_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.dumps(json.loads(executed.read_text())["cells"])
    assert "desertion (Art. 338)" in outputs and "Fitting the model here" not in outputs
