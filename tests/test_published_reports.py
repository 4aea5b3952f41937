"""The reports as readers get them: every run in reports.yaml, as `make reports` published it into
reports/, checked for code, stray output, jargon and page one's numbers.

Run by `make check-reports` (continuous integration runs it after `make reports`), not by
`make test`: building every report from data/raw takes minutes, and CI builds them anyway. A
scratch build of its own inside `make test` doubled that work and was a third of the suite's
processor time. The checks refuse reports that are not up to date for this checkout, so they
always read what the current code and ledger make. The suite's default options leave them out
(`-m 'not published'`); `make check-reports` is `pytest -m published` on this file.
"""

from __future__ import annotations

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
from milcourts.build.incremental import BuildSettings, plan
from milcourts.build.pipeline import collect_fit_requests, run_ledgers
from milcourts.build.runfile import load_runs
from milcourts.checks.posterior import CHAINS, DRAWS_PER_CHAIN
from milcourts.checks.validation import VALIDATION_FILES
from milcourts.products.public import MAIN_TABLES
from milcourts.products.stage import is_stored
from milcourts.vocabulary import METHODS_REPORT
from tests.test_readers import identifiers_in, jargon_in

pytestmark = pytest.mark.published

RUNS = load_runs()


@pytest.fixture(scope="module")
def published() -> BuildSettings:
    """The project's own reports and fit products (read only), once they are current."""
    settings = BuildSettings(processed_dir=paths.PROCESSED_DATA_DIR)
    _, _, stale, _ = plan(settings)
    if stale:
        # one message, not one error per test
        pytest.exit(
            f"{settings.reports_dir} is not up to date for this checkout "
            f"({', '.join(run.name for run in stale)}): run `make reports` first, then check again",
            returncode=1,
        )
    return settings


def test_every_run_is_published_with_its_fits_from_the_fit_stage(published):
    manifest = json.loads((published.reports_dir / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["reports"]) == {run.name for run in RUNS}
    # every fit a report shows was made by the fit stage and stored, with the main fit's checks
    paths_by_run, ledgers = run_ledgers(RUNS, published)
    requests, main = collect_fit_requests(RUNS, published, paths_by_run, ledgers)
    assert main is not None and is_stored(main, published.processed_dir, with_checks=True), main.folder
    missing = [request.folder for request in requests if not is_stored(request, published.processed_dir)]
    assert missing == []
    # the main fit's public tables and the validation's results, nothing else
    expected = {f"{table.name}.csv" for table in MAIN_TABLES} | set(VALIDATION_FILES.values())
    assert sorted(p.name for p in published.processed_dir.glob("*.csv")) == sorted(expected)


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_a_report_shows_no_code_stray_output_or_jargon(published, run):
    html = (published.reports_dir / f"{run.name}.html").read_text(encoding="utf-8")
    assert "hl-ipython3" not in html  # code inputs would be highlighted with this class
    assert "import milcourts" not in html and "from milcourts" not in html
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html and "Traceback" not in html
    assert "<figcaption>" in html and 'aria-label="' in html  # charts carry caption and alt text
    # the text a reader sees, tags stripped (highlighted code would be split over spans): the PDF
    # prints this HTML, so its text is the same
    visible = html_text.unescape(re.sub(r"<[^>]+>", "", html))
    assert "reporting.show" not in visible and "ledger_audit =" not in visible
    assert "Fitting the model here" not in html  # every fit came from the stage
    assert identifiers_in(html) == []
    if run.name != METHODS_REPORT:  # the technical report may use (and defines) statisticians' words
        assert jargon_in(html) == []


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_page_one_of_the_pdf_carries_the_title_and_the_headline(published, run):
    pdf = pypdf.PdfReader(published.reports_dir / f"{run.name}.pdf")
    first = " ".join(unicodedata.normalize("NFKC", pdf.pages[0].extract_text()).split())  # unfold ligatures
    assert run.title in first
    if run.notebook.name.startswith(("02-", "03-")):
        # page one says how many, how sure and since when, not only the title
        assert re.search(r"received about [\d,]+ \([\d,]+ to [\d,]+\) .* cases in \d{4}", first), first


def test_the_methods_report_describes_the_posterior_check_as_run(published):
    methods = (published.reports_dir / f"{METHODS_REPORT}.html").read_text(encoding="utf-8")
    assert f"{CHAINS} independent chains of {DRAWS_PER_CHAIN:,} draws each" in methods


def test_papermill_run_by_hand_loads_the_stored_fits(published, tmp_path):
    """Plain papermill, as an analyst runs it: `-p article 338` arrives as the int 338 and is
    accepted, and the fits the build stored are loaded, not refitted."""
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
        env={**os.environ, "MILCOURTS_PROCESSED_DIR": str(published.processed_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.dumps(json.loads(executed.read_text())["cells"])
    assert "desertion (Art. 338)" in outputs and "Fitting the model here" not in outputs
