"""Execute one run's notebook with papermill into the staging folder and export it to HTML.

Kernels run with the build's settings (KERNEL_ENVIRONMENT), over Unix sockets in a private folder;
a failing cell is reported with the notebook, the cell as the user sees it and the error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

# Must precede any jupyter import: otherwise a user-level kernelspec pointing at another
# interpreter can win over the venv's own python3 kernel (shared/research/toolchain.md).
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

import nbformat  # noqa: E402
import papermill as pm  # noqa: E402
from traitlets.config import Config  # noqa: E402

from milcourts import __version__  # noqa: E402
from milcourts.build.incremental import (  # noqa: E402
    CELL_TIMEOUT_SECONDS,
    DATA_PARAMETER,
    BuildSettings,
    data_folder,
    notebook_parameter_defaults,
)
from milcourts.build.progress import CellProgress  # noqa: E402
from milcourts.build.render import export_html  # noqa: E402
from milcourts.build.runfile import Run  # noqa: E402
from milcourts.inputs.provenance import sha256_of  # noqa: E402

KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BuildError(RuntimeError):
    """A run failed; reports/ was left untouched."""


def built_at() -> str:
    """Build stamp; SOURCE_DATE_EPOCH makes it reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


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


class RunTimeout(BuildError):
    """A run took longer than its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float, run_name: str):
    """SIGALRM after `seconds` (each run executes in the main thread of its own process)."""

    def expire(signum, frame):
        raise RunTimeout(
            f"report {run_name!r} did not finish within its time limit of {seconds:g} s; reports/ left untouched"
        )

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
KERNEL_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for the enclosed block (a kernel started in it inherits them)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_run(run: Run, staging: Path, settings: BuildSettings, context: dict, events=None) -> dict:
    """Execute one run into `staging` and export it to HTML; returns its manifest entry. Cells
    started are reported to `events` (see progress.CellProgress). The PDF is printed by the build
    (_execute_all), whose one browser prints every report."""
    executed = staging / f"{run.name}.ipynb"
    started = time.perf_counter()
    parameters = dict(run.parameters)
    data = staging / data_folder(run.name)
    if DATA_PARAMETER in notebook_parameter_defaults(run.notebook):  # it publishes data tables: where to
        parameters[DATA_PARAMETER] = str(data)

    log_dir = settings.build_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    progress = CellProgress(
        run.name,
        len(nbformat.read(run.notebook, as_version=4).cells) + bool(parameters),
        log_dir / f"{run.name}.log",
        events,
    )
    papermill_log = logging.getLogger("papermill")
    papermill_log.addHandler(progress)
    papermill_log.setLevel(logging.INFO)
    # Kernels talk over Unix sockets in a private directory rather than TCP on localhost: no open
    # ports, and no kernel warning about unencrypted TCP on the console. /tmp keeps the socket path
    # under the 107-byte limit wherever the project lives.
    sockets = Path(tempfile.mkdtemp(prefix="milcourts-kernel-"))
    # inherited by the kernel this run starts: its numerics settings, and where the fit stage put
    # the products the notebook loads
    environment = {**KERNEL_ENVIRONMENT, "MILCOURTS_PROCESSED_DIR": str(settings.processed_dir)}
    try:
        with _time_limit(settings.run_timeout_seconds, run.name), _environment(environment):
            pm.execute_notebook(
                str(run.notebook),
                str(executed),
                parameters=parameters,
                kernel_name=KERNEL_NAME,
                cwd=str(settings.root),
                progress_bar=False,
                log_output=True,
                shutdown_kernel="immediate",
                execution_timeout=CELL_TIMEOUT_SECONDS,
                config=Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}}),
            )
    except pm.PapermillExecutionError as exc:
        failed_dir = settings.build_dir / "failed"
        failed_dir.mkdir(parents=True, exist_ok=True)
        if executed.is_file():
            shutil.copy2(executed, failed_dir / executed.name)
        raise BuildError(
            describe_failure(run, exc) + f"\n  executed notebook kept at {failed_dir / executed.name}"
        ) from exc
    finally:
        papermill_log.removeHandler(progress)
        progress.close()
        shutil.rmtree(sockets, ignore_errors=True)
    seconds = time.perf_counter() - started
    notebook = nbformat.read(executed, as_version=4)
    leaks = _stderr_outputs(notebook)
    if leaks:
        raise BuildError(
            f"report {run.name!r} wrote to stderr, which would show in the report:\n  " + "\n  ".join(leaks)
        )
    for cell in notebook.cells:  # papermill gives this cell a random id; same inputs -> same HTML
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
    notebook.metadata["title"] = run.title
    notebook.metadata["milcourts"] = {
        "subtitle": run.subtitle,
        "data_vintage": context["data_vintage"],
        "built_at": context["built_at"],
        "package_version": __version__,
        "ledger_sha256": context["ledger_sha256"],
        # the other reports of the run file, listed and linked on the title page
        "other_reports": [other for other in context.get("reports", []) if other["name"] != run.name],
    }
    nbformat.write(notebook, executed)
    html_path = executed.with_suffix(".html")
    html_path.write_text(export_html(notebook, run.title), encoding="utf-8")
    outputs = [executed.name, html_path.name]
    if data.is_dir():
        outputs += [f"{data.name}/{path.name}" for path in sorted(data.iterdir()) if path.is_file()]
    return {
        "name": run.name,
        "title": run.title,
        "subtitle": run.subtitle,
        "notebook": run.notebook.relative_to(settings.root).as_posix()
        if run.notebook.is_relative_to(settings.root)
        else str(run.notebook),
        "parameters": run.parameters,
        "execution_seconds": round(seconds, 2),
        "outputs": {name: sha256_of(staging / name) for name in outputs},
        **{key: value for key, value in context.items() if key != "reports"},
    }
