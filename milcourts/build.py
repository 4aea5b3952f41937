"""Build every report in the run file into reports/, or nothing at all.

Each run is executed by papermill into a staging directory beside reports/ and exported to HTML and
PDF there; only when every selected run has succeeded are the files renamed into reports/, with
SIGINT/SIGTERM held back for those few renames. A failing cell, a bad ledger or a missing browser
therefore leaves reports/ exactly as the last good build left it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import html
import json
import logging
import multiprocessing
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

# Must precede any jupyter import: otherwise a user-level kernelspec pointing at another
# interpreter can win over the venv's own python3 kernel (shared/research/toolchain.md).
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

import nbformat  # noqa: E402
import papermill as pm  # noqa: E402
from traitlets.config import Config  # noqa: E402

from milcourts import __version__  # noqa: E402
from milcourts.atomic import signals_held, write_text_atomically  # noqa: E402
from milcourts.ledger import load_ledger  # noqa: E402
from milcourts.provenance import sha256_of, verify_provenance  # noqa: E402
from milcourts.render import PdfPrinter, export_html, find_browser  # noqa: E402
from milcourts.incremental import (CELL_TIMEOUT_SECONDS, OUTPUT_FORMATS, BuildSettings, cache_key,  # noqa: E402, F401
                                   is_current, is_output_name, package_fingerprint, plan, read_manifest,
                                   run_ledger)
from milcourts.runfile import Run, RunFileError, check_parameters  # noqa: E402

KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BuildError(RuntimeError):
    """A run failed; reports/ was left untouched."""


class BuildInterrupted(BuildError):
    """SIGTERM or SIGINT arrived before publishing; reports/ was left untouched."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"build interrupted by signal {signum}; reports/ left untouched")


class BuildBusy(BuildError):
    """Another build holds this checkout's build lock."""


@contextlib.contextmanager
def exclusive_build(build_dir: Path):
    """One build at a time per build directory (that is, per checkout): a second one refuses at
    once, naming the first, instead of interleaving its logs, staging and publishing with it.
    The lock is an flock, so it is released however the holder ends, even by SIGKILL."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "build.lock", "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "process unknown"
            raise BuildBusy(f"another build is running in this checkout ({holder}); it owns reports/ "
                            "until it ends. Wait for it (or stop it), then run the build again.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}, started {_built_at()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


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


class _CellProgress(logging.Handler):
    """Writes each run's log (build/logs/NAME.log) and reports each cell started to `events`
    (anything with put((run, cell, cells)): the progress display, or a queue to it from a worker)."""

    def __init__(self, run_name: str, n_cells: int, log_path: Path, events):
        super().__init__()
        self.run_name, self.n_cells, self.events = run_name, n_cells, events
        self.log = log_path.open("w", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.log.write(message + "\n")
        self.log.flush()
        found = re.match(r"Executing Cell (\d+)", message)
        if found and self.events is not None:
            self.events.put((self.run_name, int(found.group(1)), self.n_cells))

    def close(self) -> None:
        self.log.close()
        super().close()


class Progress:
    """A bar of runs done out of the total, followed by the current cell of each run executing.

    On a terminal it is one line redrawn in place, with messages printed above it; in a log (CI,
    a pipe) each change is a line of its own, since carriage returns would garble the log.
    """

    WIDTH = 24

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.done = total, 0
        self.cells: dict[str, tuple[int, int]] = {}
        self.is_terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.lock = threading.Lock()

    def line(self) -> str:
        filled = round(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        running = ", ".join(f"{name} cell {cell}/{cells}" for name, (cell, cells) in self.cells.items())
        return f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} runs" + \
            (f" | {running}" if running else "")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _draw(self) -> None:
        self._write(f"\r\033[K{self.line()}" if self.is_terminal else self.line() + "\n")

    def message(self, text: str) -> None:
        with self.lock:
            self._write(f"\r\033[K{text}\n" if self.is_terminal else text + "\n")
            if self.is_terminal:
                self._draw()

    def put(self, event: tuple[str, int, int]) -> None:
        name, cell, cells = event
        with self.lock:
            self.cells[name] = (cell, cells)
            self._draw()

    def finished(self, name: str, seconds: float) -> None:
        with self.lock:
            self.done += 1
            self.cells.pop(name, None)
        self.message(f"{name}: done in {seconds:.1f} s")
        if not self.is_terminal:
            with self.lock:
                self._draw()

    def close(self) -> None:
        if self.is_terminal:
            self._write("\n")


@contextlib.contextmanager
def _relayed(progress: Progress):
    """A queue worker processes can put cell events on, drained into `progress` by a thread."""
    manager = multiprocessing.Manager()
    events = manager.Queue()
    stop = threading.Event()

    def drain():
        while not stop.is_set() or not events.empty():
            try:
                progress.put(events.get(timeout=0.1))
            except queue.Empty:
                continue
            except (EOFError, OSError):  # the manager went away (interruption): nothing more to show
                return

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield events
    finally:
        stop.set()
        thread.join(timeout=2)
        manager.shutdown()


class RunTimeout(BuildError):
    """A run took longer than its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float, run_name: str):
    """SIGALRM after `seconds` (each run executes in the main thread of its own process)."""
    def expire(signum, frame):
        raise RunTimeout(f"report {run_name!r} did not finish within its time limit of {seconds:g} s; "
                         "reports/ left untouched")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# One BLAS/OpenMP thread per kernel. Runs are parallel across processes (--jobs); kernels that
# each also spun up a thread per core oversubscribed the 2 cores and made `--jobs 2` 2.5 times
# slower than serial. Fixing it for serial builds too keeps the numbers independent of --jobs
# (threaded reductions may round differently).
#
# glibc's malloc hands each large numpy temporary fresh pages from mmap and returns them on free
# until its adaptive threshold catches up; every page is then faulted in and zeroed again. A
# fresh kernel's first joint fit took 2.4 million page faults and 11.0 s, the next one 8.7 s.
# A fixed threshold of 32 MiB (glibc's own ceiling) with freed memory kept up to 256 MiB makes
# the first fit as fast as later ones (8.9 s). Ignored where malloc is not glibc's.
KERNEL_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                      "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def execute_run(run: Run, staging: Path, settings: BuildSettings, context: dict, events=None) -> dict:
    """Execute one run into `staging` and export it to HTML; returns its manifest entry. Cells
    started are reported to `events` (see _CellProgress). The PDF is printed by the build
    (_execute_all), whose one browser prints every report."""
    os.environ.update(KERNEL_ENVIRONMENT)  # inherited by the kernel this run starts
    executed = staging / f"{run.name}.ipynb"
    started = time.perf_counter()
    log_dir = settings.build_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    progress = _CellProgress(run.name, len(nbformat.read(run.notebook, as_version=4).cells) + bool(run.parameters),
                             log_dir / f"{run.name}.log", events)
    papermill_log = logging.getLogger("papermill")
    papermill_log.addHandler(progress)
    papermill_log.setLevel(logging.INFO)
    # Kernels talk over Unix sockets in a private directory rather than TCP on localhost: no open
    # ports, and no kernel warning about unencrypted TCP on the console. /tmp keeps the socket path
    # under the 107-byte limit wherever the project lives.
    sockets = Path(tempfile.mkdtemp(prefix="milcourts-kernel-"))
    try:
        with _time_limit(settings.run_timeout_seconds, run.name):
            pm.execute_notebook(
                str(run.notebook), str(executed), parameters=run.parameters, kernel_name=KERNEL_NAME,
                cwd=str(settings.root), progress_bar=False, log_output=True,
                shutdown_kernel="immediate", execution_timeout=CELL_TIMEOUT_SECONDS,
                config=Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}}),
            )
    except pm.PapermillExecutionError as exc:
        failed_dir = settings.build_dir / "failed"
        failed_dir.mkdir(parents=True, exist_ok=True)
        if executed.is_file():
            shutil.copy2(executed, failed_dir / executed.name)
        raise BuildError(describe_failure(run, exc) +
                         f"\n  executed notebook kept at {failed_dir / executed.name}") from exc
    finally:
        papermill_log.removeHandler(progress)
        progress.close()
        shutil.rmtree(sockets, ignore_errors=True)
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
    return {
        "name": run.name, "title": run.title, "subtitle": run.subtitle,
        "notebook": run.notebook.relative_to(settings.root).as_posix()
        if run.notebook.is_relative_to(settings.root) else str(run.notebook),
        "parameters": run.parameters, "execution_seconds": round(seconds, 2),
        "outputs": {name: sha256_of(staging / name) for name in outputs},
        **context,
    }


def _execute_all(runs: list[Run], staging: Path, settings: BuildSettings, contexts: dict[str, dict]) -> dict[str, dict]:
    """Every run, `settings.jobs` at a time in separate processes (serially in this one for 1).

    PDFs are printed here, in this process, by one browser for the whole build, as each run's
    HTML arrives: with --jobs the prints overlap the runs still executing, and no worker starts a
    browser of its own (each start costs more CPU than the print itself).
    """
    done: dict[str, dict] = {}
    progress = Progress(len(runs))
    printer = PdfPrinter() if settings.make_pdf else None  # starts while the first kernel does

    def finished(entry: dict) -> None:
        if printer is not None:
            pdf_name = f"{entry['name']}.pdf"
            printer.print(staging / f"{entry['name']}.html", staging / pdf_name)
            entry["outputs"][pdf_name] = sha256_of(staging / pdf_name)
        done[entry["name"]] = entry
        progress.finished(entry["name"], entry["execution_seconds"])

    try:
        if settings.jobs <= 1:
            for run in runs:
                progress.message(f"{run.name}: executing {run.notebook.name}")
                finished(execute_run(run, staging, settings, contexts[run.name], progress))
            return done
        with _relayed(progress) as events:
            pool = ProcessPoolExecutor(max_workers=settings.jobs)
            try:
                futures = []
                for run in runs:
                    progress.message(f"{run.name}: queued ({run.notebook.name})")
                    futures.append(pool.submit(execute_run, run, staging, settings, contexts[run.name], events))
                for future in as_completed(futures):
                    finished(future.result())
            except BaseException:
                # a failure or an interruption: stop the other runs now (their kernels are shut down
                # by the same SIGTERM handling) instead of waiting for them to finish
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        return done
    finally:
        progress.close()
        if printer is not None:
            printer.close()


class _Interrupts:
    """Signals received during a build; see _interrupts_as_errors."""

    def __init__(self):
        self.received: list[int] = []
        self.publishing = False

    def check(self) -> None:
        if self.received:
            raise BuildInterrupted(self.received[0])


@contextlib.contextmanager
def _interrupts_as_errors():
    """Turn SIGINT and SIGTERM into BuildInterrupted so staging is cleaned up and reports/ stays
    untouched.

    Both handlers are installed explicitly: a build started in the background by a shell inherits
    SIGINT ignored, and was then published despite the interrupt. The exception raised in the
    handler may surface wrapped, or be swallowed, by whatever was running (papermill's asyncio
    loop, a kernel client), so the arrival of the signal is remembered: any exception leaving the
    block after it is reported as the interruption it is, and `check()` before publishing refuses
    to publish. A signal that arrives once publishing has begun (its renames hold signals back)
    no longer stops anything: the new reports are complete.
    """
    state = _Interrupts()

    def handler(signum, frame):
        state.received.append(signum)
        if not state.publishing:
            raise BuildInterrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    except BuildInterrupted:
        raise
    except BaseException as exc:
        if state.received and not state.publishing:
            raise BuildInterrupted(state.received[0]) from exc
        raise
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def _format_order(name: str) -> tuple[int, str]:
    extension = name.rsplit(".", 1)[-1]
    return (OUTPUT_FORMATS.index(extension) if extension in OUTPUT_FORMATS else len(OUTPUT_FORMATS), name)


def render_index(manifest: dict) -> str:
    """reports/index.html: every report with its data vintage and build time, all text escaped."""
    rows = []
    for entry in sorted(manifest["reports"].values(), key=lambda e: e["name"]):
        links = " · ".join(
            f'<a href="{html.escape(name)}">{html.escape(name.rsplit(".", 1)[1].upper())}</a>'
            for name in sorted(entry["outputs"], key=_format_order)
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
    """Rename every output into reports/, then the manifest and index; nothing else touches it.

    reports/ holds exactly what the manifest lists: a file the previous entry of a run listed and
    the new one does not (the PDF of a build before a `--no-pdf` one) is removed. A file is only
    removed if it is provably the build's own: a plain name inside reports/ that starts with the
    run's name, with the very checksum the manifest recorded for it (a forged manifest cannot
    make the build delete a reader's file, and a file edited since is left alone).
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(reports_dir)
    stale = []
    for entry in entries:
        previous = manifest["reports"].get(entry["name"], {}).get("outputs", {})
        for name, digest in previous.items():
            path = reports_dir / name
            if name not in entry["outputs"] and is_output_name(name) and name.startswith(f"{entry['name']}.") \
                    and path.is_file() and not path.is_symlink() and sha256_of(path) == digest:
                stale.append(path)
        manifest["reports"][entry["name"]] = entry
    with signals_held():
        for entry in entries:
            for name in entry["outputs"]:
                os.replace(staging / name, reports_dir / name)
        for path in stale:
            path.unlink(missing_ok=True)
        write_text_atomically(reports_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_text_atomically(reports_dir / "index.html", render_index(manifest))


def _ledger_contexts(runs: list[Run], settings: BuildSettings) -> dict[str, dict]:
    """Per run, the ledger it reads, checked against its provenance record and validated, and what
    its title page and manifest entry say about it. Nothing runs on a ledger that fails either."""
    ledgers = {run.name: run_ledger(run, settings) for run in runs}
    facts = {}
    for path in sorted(set(ledgers.values())):
        verify_provenance(path, settings.ledger_provenance if path == settings.ledger_csv else None)
        ledger = load_ledger(path)
        facts[path] = {
            "data_vintage": ledger["source_date"].max().date().isoformat(),
            "ledger_sha256": sha256_of(path),
            "ledger_csv": path.relative_to(settings.root).as_posix() if path.is_relative_to(settings.root) else str(path),
        }
    return {name: facts[path] for name, path in ledgers.items()}


def build(only: list[str] | None = None, settings: BuildSettings = BuildSettings()) -> list[dict]:
    """Build the selected runs (all by default) and publish them together; raise on any failure.

    A run whose cache key (see cache_key) matches its published entry, with its files intact, is
    not executed again: a rebuild with nothing changed starts no kernel. Returns the entries built.
    One build at a time per checkout (exclusive_build).
    """
    with exclusive_build(settings.build_dir):
        return _build_locked(only, settings)


def _build_locked(only: list[str] | None, settings: BuildSettings) -> list[dict]:
    _, keys, stale, published = plan(settings, only)
    for name, entry in published.items():
        if name in keys and name not in {run.name for run in stale}:
            _log(f"{name}: up to date (inputs unchanged since {entry['built_at']})")
    if not stale:
        _log("nothing to build; reports/ unchanged")
        return []
    runs = stale
    problems = [p for run in runs for p in check_parameters(run, f"{settings.run_file} ({run.name})")]
    if problems:
        raise RunFileError("\n".join(problems))
    ledgers = _ledger_contexts(runs, settings)  # nothing runs on an unrecorded or invalid ledger
    if settings.make_pdf:
        find_browser()  # fail before spending minutes on notebooks
    shared = {"built_at": _built_at(), "package_version": __version__, "git_commit": _git_commit(settings.root)}
    contexts = {run.name: {**shared, **ledgers[run.name]} for run in runs}
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=settings.build_dir))
    try:
        with _interrupts_as_errors() as interrupts:
            # longest first (by the last build's time; new runs first): with --jobs the slow runs
            # then start at once instead of waiting behind quick ones
            longest_first = sorted(runs, key=lambda r: -published.get(r.name, {}).get("execution_seconds", 1e9))
            entries = _execute_all(longest_first, staging, settings, contexts)
            entries = [{**entries[run.name], "cache_key": keys[run.name]} for run in runs]
            with signals_held():
                interrupts.check()  # an interrupt some library swallowed still stops the build here
                interrupts.publishing = True
                publish(staging, entries, settings.reports_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log(f"published {len(entries)} report(s) to {settings.reports_dir}")
    return entries
