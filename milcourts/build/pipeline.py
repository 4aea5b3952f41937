"""Build every report in the run file into reports/, or nothing at all.

Each run is executed by papermill into a staging directory beside reports/ and exported to HTML and
PDF there; only when every selected run has succeeded are the files renamed into reports/, with
SIGINT/SIGTERM held back for those few renames. A failing cell, a bad ledger or a missing browser
therefore leaves reports/ exactly as the last good build left it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from milcourts import __version__
from milcourts.atomic import signals_held
from milcourts.build.execute import (
    BuildError,
    KernelsAhead,
    built_at,
    execute_run,
    export_run_html,
    run_notebook,
)
from milcourts.build.incremental import BuildSettings, plan, run_ledger, run_parameters
from milcourts.build.progress import Progress, relayed
from milcourts.build.publish import publish
from milcourts.build.render import PdfPrinter, find_browser
from milcourts.build.runfile import Run, RunFileError, check_parameters, load_runs, select_runs
from milcourts.inputs.ledger import load_ledger
from milcourts.inputs.provenance import sha256_of, verify_provenance
from milcourts.model.runtime import process_pool, stop_now
from milcourts.products.needs import FitRequest, main_request, requests_for_run


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
            raise BuildBusy(
                f"another build is running in this checkout ({holder}); it owns reports/ "
                "until it ends. Wait for it (or stop it), then run the build again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}, started {built_at()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if done.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def _execute_all(
    runs: list[Run],
    staging: Path,
    settings: BuildSettings,
    contexts: dict[str, dict],
    printer: PdfPrinter | None,
    kernels: KernelsAhead | None,
    interrupts: _Interrupts,
) -> dict[str, dict]:
    """Every run, `settings.jobs` at a time in separate processes (serially here for 1, on the
    `kernels` started ahead, which the caller shuts down).

    PDFs are printed here, in this process, by one browser for the whole build (`printer`, None
    for no PDF), as each run's HTML arrives: the prints overlap the runs still executing, and no
    worker starts a browser of its own (each start costs more CPU than the print itself).
    """
    done: dict[str, dict] = {}
    progress = Progress(len(runs))

    def finished(entry: dict) -> None:
        if printer is not None:
            pdf_name = f"{entry['name']}.pdf"
            printer.print(staging / f"{entry['name']}.html", staging / pdf_name)
            entry["outputs"][pdf_name] = sha256_of(staging / pdf_name)
        done[entry["name"]] = entry
        progress.finished(entry["name"], entry["execution_seconds"])

    try:
        if settings.jobs <= 1:
            _execute_serially(runs, staging, contexts, kernels, interrupts, progress, finished)
            return done
        with relayed(progress) as events:
            pool = process_pool(settings.jobs)
            try:
                futures = []
                for run in runs:
                    progress.message(f"{run.name}: queued ({run.notebook.name})")
                    futures.append(pool.submit(execute_run, run, staging, settings, contexts[run.name], events))
                for future in as_completed(futures):
                    finished(future.result())
            except BaseException:
                # a failure or an interruption: stop the other runs now (their kernels are shut down by the
                # same SIGTERM handling) instead of waiting for them to finish
                stop_now(pool)
                raise
            pool.shutdown()
        return done
    finally:
        progress.close()


def _execute_serially(
    runs: list[Run],
    staging: Path,
    contexts: dict[str, dict],
    kernels: KernelsAhead,
    interrupts: _Interrupts,
    progress: Progress,
    finished: Callable[[dict], None],
) -> None:
    """One run at a time, each step of the next run's work overlapping the run before it:

    - its kernel starts, and imports what its notebook imports, while the run before executes
      (KernelsAhead);
    - its HTML is exported and its PDF printed (`finished`) by a thread while the next run
      executes.

    On two cores a run's kernel uses one; the kernel start, the imports, the export and the print
    that used to sit between two runs (about 4 s a report) go on the other. A failed export or
    print stops the build after the run then executing.
    """

    def render(entry: dict, notebook) -> None:
        finished(export_run_html(entry, notebook, staging))

    rendering: list[Future] = []
    renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    try:
        for index, run in enumerate(runs):
            progress.message(f"{run.name}: executing {run.notebook.name}")
            with interrupts.stopping(kernels.kill):  # an interruption kills the kernels
                kernel = kernels.take(index)
                interrupts.check()  # one that came while a kernel started
                entry, notebook = run_notebook(
                    run, staging, kernels.settings, contexts[run.name], progress, kernel=kernel
                )
            rendering.append(renderer.submit(render, entry, notebook))
            for future in rendering:
                if future.done():
                    future.result()  # raises what the export or the print raised
        for future in rendering:
            future.result()
    finally:
        renderer.shutdown(wait=True, cancel_futures=True)


class _Interrupts:
    """Signals received during a build; see _interrupts_as_errors."""

    def __init__(self):
        self.received: list[int] = []
        self.publishing = False
        self.stop: Callable[[], None] | None = None

    def check(self) -> None:
        if self.received:
            raise BuildInterrupted(self.received[0])

    @contextlib.contextmanager
    def stopping(self, stop: Callable[[], None]):
        """Within the block a signal calls `stop` (kill the kernels) instead of raising inside
        whatever runs: jupyter's kernel client, interrupted by an exception inside its event
        loop, could hang for ever closing its sockets (seen while a kernel was starting). The
        interruption is raised when the block ends, or converted from the error the stopped
        kernel caused."""
        self.stop = stop
        try:
            yield
        finally:
            self.stop = None
        self.check()


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
        if state.publishing:
            return
        if state.stop is not None:
            state.stop()
            return
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


def _checked_ledger(path: Path, settings: BuildSettings) -> pd.DataFrame:
    """A ledger checked against its provenance record and validated: nothing runs on one that
    fails either."""
    verify_provenance(path, settings.ledger_provenance if path == settings.ledger_csv else None)
    return load_ledger(path)


def run_ledgers(runs: list[Run], settings: BuildSettings) -> tuple[dict[str, Path], dict[Path, pd.DataFrame]]:
    """The ledger each run reads, and each of them checked and loaded once."""
    paths_by_run = {run.name: run_ledger(run, settings) for run in runs}
    return paths_by_run, {path: _checked_ledger(path, settings) for path in sorted(set(paths_by_run.values()))}


def _ledger_facts(path: Path, ledger: pd.DataFrame, settings: BuildSettings) -> dict:
    """What a report's title page and manifest entry say about the ledger it read."""
    return {
        "data_vintage": ledger["source_date"].max().date().isoformat(),
        "ledger_sha256": sha256_of(path),
        "ledger_csv": path.relative_to(settings.root).as_posix() if path.is_relative_to(settings.root) else str(path),
    }


def collect_fit_requests(
    runs: list[Run],
    settings: BuildSettings,
    paths_by_run: dict[str, Path],
    ledgers: dict[Path, pd.DataFrame],
    with_main: bool = False,
) -> tuple[list[FitRequest], FitRequest | None]:
    """Every fit the runs need (products.needs), and the project's main fit: the default spec on
    the build's ledger, fitted with the model's checks whenever any run needs a fit (or always,
    `with_main`), so that data/processed/ holds its tables after any build that fits."""
    requests = [
        request
        for run in runs
        for request in requests_for_run(run.notebook, run_parameters(run), ledgers[paths_by_run[run.name]])
    ]
    main = None
    if settings.main_fit and (requests or with_main):
        ledger = ledgers.get(settings.ledger_csv)
        main = main_request(ledger if ledger is not None else _checked_ledger(settings.ledger_csv, settings))
    return requests, main


def run_fit_stage(
    settings: BuildSettings = BuildSettings(), only: list[str] | None = None, say: Callable[[str], None] = None
) -> list[FitRequest]:
    """`make model`: the fit stage alone, for every run in the run file (or `only` these), and
    the main fit. One build or stage at a time per checkout."""
    say = say or _log
    with exclusive_build(settings.build_dir):
        runs = select_runs(load_runs(settings.run_file, settings.root), only)
        paths_by_run, ledgers = run_ledgers(runs, settings)
        requests, main = collect_fit_requests(runs, settings, paths_by_run, ledgers, with_main=True)
        from milcourts.products.stage import fit_stage  # the model's imports, only when it fits

        return fit_stage(requests, settings.processed_dir, settings.jobs, main=main, say=say)


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
    paths_by_run, ledgers = run_ledgers(runs, settings)  # nothing runs on an unrecorded or invalid ledger
    requests, main = collect_fit_requests(runs, settings, paths_by_run, ledgers)
    if settings.make_pdf:
        find_browser()  # fail before spending minutes on notebooks
    every_run = [{"name": r.name, "title": r.title} for r in load_runs(settings.run_file, settings.root, check=False)]
    shared = {
        "built_at": built_at(),
        "package_version": __version__,
        "git_commit": _git_commit(settings.root),
        "reports": every_run,
    }
    contexts = {
        run.name: {**shared, **_ledger_facts(paths_by_run[run.name], ledgers[paths_by_run[run.name]], settings)}
        for run in runs
    }
    # one build at a time holds the lock, so staging has a fixed name (the executed notebooks then
    # name the same data folder every time); what an interrupted build left there is ours to clear
    staging = settings.build_dir / "staging"
    if staging.is_symlink() or staging.is_file():
        staging.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # longest first (by the last build's time; new runs first): with --jobs the slow runs then
    # start at once instead of waiting behind quick ones
    longest_first = sorted(runs, key=lambda r: -published.get(r.name, {}).get("execution_seconds", 1e9))
    try:
        with _interrupts_as_errors() as interrupts, contextlib.ExitStack() as ahead:
            # the browser and, one run at a time, the first run's kernel start while the fit stage
            # runs (it fits in this process, one fit at a time)
            printer = ahead.enter_context(PdfPrinter()) if settings.make_pdf else None
            kernels = ahead.enter_context(KernelsAhead(longest_first, settings)) if settings.jobs <= 1 else None
            if kernels is not None:
                with interrupts.stopping(kernels.kill):
                    kernels.start(0)
            # the fit stage: every model specification the runs need, fitted once, before any notebook
            if requests:
                from milcourts.products.stage import fit_stage  # the model's imports, only when it fits

                fit_stage(requests, settings.processed_dir, settings.jobs, main=main, say=_log)
            entries = _execute_all(longest_first, staging, settings, contexts, printer, kernels, interrupts)
            entries = [{**entries[run.name], "cache_key": keys[run.name]} for run in runs]
            with signals_held():
                interrupts.check()  # an interrupt some library swallowed still stops the build here
                interrupts.publishing = True
                publish(staging, entries, settings.reports_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log(f"published {len(entries)} report(s) to {settings.reports_dir}")
    return entries
