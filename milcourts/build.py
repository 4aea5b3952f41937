"""Build every report in the run file into reports/, or nothing at all.

Each run is executed by papermill into a staging directory beside reports/ and exported to HTML and
PDF there; only when every selected run has succeeded are the files renamed into reports/, with
SIGINT/SIGTERM held back for those few renames. A failing cell, a bad ledger or a missing browser
therefore leaves reports/ exactly as the last good build left it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Must precede any jupyter import: otherwise a user-level kernelspec pointing at another
# interpreter can win over the venv's own python3 kernel (shared/research/toolchain.md).
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

import nbformat  # noqa: E402
import papermill as pm  # noqa: E402

from milcourts import __version__, paths  # noqa: E402
from milcourts.atomic import signals_held, write_text_atomically  # noqa: E402
from milcourts.ledger import load_ledger  # noqa: E402
from milcourts.provenance import sha256_of, verify_provenance  # noqa: E402
from milcourts.render import export_html, find_browser, print_pdf  # noqa: E402
from milcourts.runfile import Run, load_runs, select_runs  # noqa: E402

CELL_TIMEOUT_SECONDS = 600
KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BuildError(RuntimeError):
    """A run failed; reports/ was left untouched."""


class BuildInterrupted(BuildError):
    """SIGTERM or SIGINT arrived before publishing; reports/ was left untouched."""


@dataclass(frozen=True)
class BuildSettings:
    run_file: Path = paths.RUN_FILE
    root: Path = paths.PROJECT_ROOT
    reports_dir: Path = paths.REPORTS_DIR
    build_dir: Path = paths.BUILD_DIR
    ledger_csv: Path = paths.LEDGER_CSV
    ledger_provenance: Path = paths.LEDGER_PROVENANCE
    make_pdf: bool = True


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _built_at() -> str:
    """Build stamp; SOURCE_DATE_EPOCH makes it reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if done.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def describe_failure(run: Run, error: pm.PapermillExecutionError) -> str:
    """Name the report, the notebook, the cell (as the user sees it) and the error."""
    source_cells = nbformat.read(run.notebook, as_version=4).cells
    positions = [i for i, cell in enumerate(source_cells, start=1) if cell.source == error.source]
    where = f"cell {positions[0]} of {len(source_cells)}" if positions else "a cell"
    traceback = _ANSI.sub("", "\n".join(error.traceback))
    tail = "\n".join("    " + line for line in traceback.strip().splitlines()[-12:])
    first_line = (error.source or "").strip().splitlines()[:1]
    source = f"\n  cell source starts: {first_line[0]}" if first_line else ""
    return (
        f"report {run.name!r} failed: notebook {run.notebook.name}, {where} "
        f"(In [{error.exec_count}]): {error.ename}: {error.evalue}{source}\n{tail}"
    )


def _stderr_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """Warnings and logs that would leak into a reader's report."""
    leaks = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                leaks.append(f"cell {index}: {output.get('text', '').strip().splitlines()[0][:200]}")
    return leaks


def execute_run(run: Run, staging: Path, settings: BuildSettings, context: dict) -> dict:
    """Execute one run into `staging` and export it; returns its manifest entry."""
    executed = staging / f"{run.name}.ipynb"
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(run.notebook), str(executed), parameters=run.parameters, kernel_name=KERNEL_NAME,
            cwd=str(settings.root), progress_bar=False, log_output=False,
            shutdown_kernel="immediate", execution_timeout=CELL_TIMEOUT_SECONDS,
        )
    except pm.PapermillExecutionError as exc:
        failed_dir = settings.build_dir / "failed"
        failed_dir.mkdir(parents=True, exist_ok=True)
        if executed.is_file():
            shutil.copy2(executed, failed_dir / executed.name)
        raise BuildError(describe_failure(run, exc) +
                         f"\n  executed notebook kept at {failed_dir / executed.name}") from exc
    seconds = time.perf_counter() - started
    notebook = nbformat.read(executed, as_version=4)
    leaks = _stderr_outputs(notebook)
    if leaks:
        raise BuildError(f"report {run.name!r} wrote to stderr, which would show in the report:\n  "
                         + "\n  ".join(leaks))
    for cell in notebook.cells:  # papermill gives this cell a random id; same inputs -> same HTML
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
    notebook.metadata["title"] = run.title
    notebook.metadata["milcourts"] = {
        "subtitle": run.subtitle, "data_vintage": context["data_vintage"],
        "built_at": context["built_at"], "package_version": __version__,
        "ledger_sha256": context["ledger_sha256"],
    }
    nbformat.write(notebook, executed)
    html_path = executed.with_suffix(".html")
    html_path.write_text(export_html(notebook, run.title), encoding="utf-8")
    outputs = [executed.name, html_path.name]
    if settings.make_pdf:
        pdf_path = executed.with_suffix(".pdf")
        print_pdf(html_path, pdf_path)
        outputs.append(pdf_path.name)
    return {
        "name": run.name, "title": run.title, "subtitle": run.subtitle,
        "notebook": run.notebook.relative_to(settings.root).as_posix()
        if run.notebook.is_relative_to(settings.root) else str(run.notebook),
        "parameters": run.parameters, "execution_seconds": round(seconds, 2),
        "outputs": {name: sha256_of(staging / name) for name in outputs},
        **context,
    }


@contextlib.contextmanager
def _interrupts_as_errors():
    """Turn SIGTERM into BuildInterrupted so staging is cleaned up and reports/ stays untouched.

    The exception raised in the handler may surface wrapped by whatever was running (papermill's
    asyncio loop, a kernel client), so the arrival of the signal is remembered and any exception
    leaving the block after it is reported as the interruption it is.
    """
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        raise BuildInterrupted(f"build interrupted by signal {signum}; reports/ left untouched")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except BuildInterrupted:
        raise
    except BaseException as exc:
        if received:
            raise BuildInterrupted(f"build interrupted by signal {received[0]}; reports/ left untouched") from exc
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_manifest(reports_dir: Path) -> dict:
    path = reports_dir / "manifest.json"
    if not path.is_file():
        return {"reports": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def render_index(manifest: dict) -> str:
    """reports/index.html: every report with its data vintage and build time, all text escaped."""
    rows = []
    for entry in sorted(manifest["reports"].values(), key=lambda e: e["name"]):
        links = " · ".join(
            f'<a href="{html.escape(name)}">{html.escape(name.rsplit(".", 1)[1].upper())}</a>'
            for name in sorted(entry["outputs"], key=lambda n: ("html", "pdf", "ipynb").index(n.rsplit(".", 1)[1]))
        )
        params = ", ".join(f"{k} = {v!r}" for k, v in entry["parameters"].items()) or "defaults"
        rows.append(
            "<tr>"
            f"<td><strong>{html.escape(entry['title'])}</strong><br><small>{html.escape(entry['subtitle'])}</small></td>"
            f"<td>{links}</td><td>{html.escape(entry['data_vintage'])}</td>"
            f"<td>{html.escape(entry['built_at'])}</td><td><code>{html.escape(params)}</code></td>"
            "</tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reports: prosecutions for refusing to fight</title>
<style>body{{font-family:"DejaVu Sans",Arial,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.5rem;text-align:left;vertical-align:top}}</style>
</head><body>
<h1>Reports: prosecutions of soldiers who refuse to fight</h1>
<p>Built from the ledger of published figures (data/raw). Data vintage is the latest publication
date in the ledger a report read. The executed notebook (IPYNB) is the audit trail of each report.</p>
<table><thead><tr><th>Report</th><th>Formats</th><th>Data vintage</th><th>Built</th><th>Parameters</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p><small>milcourts {html.escape(__version__)}</small></p>
</body></html>
"""


def publish(staging: Path, entries: list[dict], reports_dir: Path) -> None:
    """Rename every output into reports/, then the manifest and index; nothing else touches it."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(reports_dir)
    for entry in entries:
        manifest["reports"][entry["name"]] = entry
    with signals_held():
        for entry in entries:
            for name in entry["outputs"]:
                os.replace(staging / name, reports_dir / name)
        write_text_atomically(reports_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_text_atomically(reports_dir / "index.html", render_index(manifest))


def build(only: list[str] | None = None, settings: BuildSettings = BuildSettings()) -> list[dict]:
    """Build the selected runs (all by default) and publish them together; raise on any failure."""
    runs = select_runs(load_runs(settings.run_file, settings.root), only)
    verify_provenance(settings.ledger_csv, settings.ledger_provenance)
    ledger = load_ledger(settings.ledger_csv)  # nothing runs on an invalid ledger
    if settings.make_pdf:
        find_browser()  # fail before spending minutes on notebooks
    context = {
        "data_vintage": ledger["source_date"].max().date().isoformat(),
        "built_at": _built_at(), "package_version": __version__,
        "ledger_sha256": sha256_of(settings.ledger_csv),
        "git_commit": _git_commit(settings.root),
    }
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=settings.build_dir))
    try:
        with _interrupts_as_errors():
            entries = []
            for number, run in enumerate(runs, start=1):
                _log(f"[{number}/{len(runs)}] {run.name}: executing {run.notebook.name}")
                entries.append(execute_run(run, staging, settings, context))
                _log(f"[{number}/{len(runs)}] {run.name}: done in {entries[-1]['execution_seconds']:.1f} s")
            publish(staging, entries, settings.reports_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log(f"published {len(entries)} report(s) to {settings.reports_dir}")
    return entries
