"""Execute one run's notebook with papermill into the staging folder and export it to HTML.

Kernels run with the build's settings (KERNEL_ENVIRONMENT), over Unix sockets in a private folder;
a failing cell is reported with the notebook, the cell as the user sees it and the error.
"""

from __future__ import annotations

import ast
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
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from jupyter_core.utils import run_sync  # noqa: E402
from papermill.clientwrap import PapermillNotebookClient  # noqa: E402
from papermill.engines import NBClientEngine, papermill_engines  # noqa: E402
from papermill.log import logger as papermill_logger  # noqa: E402

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
def _time_limit(seconds: float, run_name: str, stop):
    """RunTimeout for a run still going after `seconds` (SIGALRM: each run executes in the main
    thread of its own process). The alarm only calls `stop` (the run's kernel killed, see
    StartedKernel.kill): the run then fails through nbclient's own handling of a dead kernel, and
    the timeout is raised here. An exception raised by the alarm inside jupyter's client code
    could leave it closing its sockets for ever (a build hung that way when interrupted)."""
    expired = []

    def expire(signum, frame):
        expired.append(signum)
        stop()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    timeout = RunTimeout(
        f"report {run_name!r} did not finish within its time limit of {seconds:g} s; reports/ left untouched"
    )
    try:
        yield
    except BaseException as exc:
        if expired:
            raise timeout from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if expired:
        raise timeout


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


def notebook_imports(notebook: Path) -> list[str]:
    """The notebook's own top-level import statements (relative imports aside): what its kernel
    loads as it starts (StartedKernel). Cells that are not plain Python (magics) and imports
    inside blocks are left to the notebook."""
    statements = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        statements += [
            ast.unparse(node)
            for node in tree.body
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
        ]
    return statements


def _preload_line(statement: str) -> str:
    """One import run at kernel start in a namespace of its own: the module is loaded, and the
    notebook's namespace stays a fresh kernel's. A failure is left for the notebook to report."""
    return f"try:\n    exec({statement!r}, {{}})\nexcept Exception:\n    pass"


class StartedKernel:
    """A run's kernel, started before the run with the run's environment (KERNEL_ENVIRONMENT, the
    products folder) and working directory, that imports what the notebook imports as it starts.

    A serial build starts the next run's kernel while the run before it executes: on two cores
    the kernel's start and the imports (seaborn, scipy.stats, matplotlib, pandas: about 2.5 s of
    the 4.5 s a trend report took) then leave the build's path. The kernel talks over Unix sockets
    in a private folder rather than TCP on localhost: no open ports, and no kernel warning about
    unencrypted TCP on the console (/tmp keeps the socket path under the 107-byte limit wherever
    the project lives). Warnings an import prints reach the build's console, not the report.
    """

    def __init__(self, notebook: Path, settings: BuildSettings):
        self.sockets = Path(tempfile.mkdtemp(prefix="milcourts-kernel-"))
        self.manager = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(self.sockets / "kernel"))
        environment = {**os.environ, **KERNEL_ENVIRONMENT, "MILCOURTS_PROCESSED_DIR": str(settings.processed_dir)}
        # as nbclient starts its kernels: history in memory, not in the user's ~/.ipython database
        arguments = ["--HistoryManager.hist_file=:memory:"]
        arguments += [f"--IPKernelApp.exec_lines={_preload_line(line)}" for line in notebook_imports(notebook)]
        try:
            run_sync(self.manager.start_kernel)(extra_arguments=arguments, cwd=str(settings.root), env=environment)
        except BaseException:
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise

    def kill(self) -> None:
        """SIGKILL to the kernel, if it runs; safe in a signal handler. What an interruption or a
        time limit does: the run then fails at once through nbclient's handling of a dead kernel
        (within a second), rather than by an exception raised inside its event loop."""
        process = getattr(self.manager.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()

    def close(self) -> None:
        """Shut the kernel down if the run has not (a build that failed before it); idempotent."""
        try:
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)
        finally:
            shutil.rmtree(self.sockets, ignore_errors=True)


class KernelsAhead:
    """Kernels for `runs` in order, each started ahead of its run (StartedKernel): start(i) starts
    run i's; take(i) hands run i its kernel (started now if it was not) and starts run i + 1's. As
    a context manager, it shuts down on exit every kernel a run did not (a build that failed or
    was interrupted before them)."""

    def __init__(self, runs: list[Run], settings: BuildSettings):
        self.runs, self.settings = runs, settings
        self.kernels: dict[int, StartedKernel] = {}

    def start(self, index: int) -> None:
        if index < len(self.runs) and index not in self.kernels:
            self.kernels[index] = StartedKernel(self.runs[index].notebook, self.settings)

    def take(self, index: int) -> StartedKernel:
        self.start(index)
        self.start(index + 1)
        return self.kernels[index]

    def kill(self) -> None:
        """Every kernel started, killed (StartedKernel.kill); safe in a signal handler."""
        for kernel in list(self.kernels.values()):
            kernel.kill()

    def __enter__(self) -> KernelsAhead:
        return self

    def __exit__(self, *exc_info) -> None:
        for kernel in self.kernels.values():
            kernel.close()


class _StartedKernelEngine(NBClientEngine):
    """papermill's nbclient engine on a StartedKernel (km=). nbclient leaves a kernel it was handed
    running, its client's sockets open; told cleanup_kc, it shuts it down and closes them when the
    run ends or fails, as for a kernel it started itself."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        kwargs.pop("input_path", None)
        client = PapermillNotebookClient(
            nb_man,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=papermill_logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            **kwargs,
        )
        return client.execute(cleanup_kc=True)


ENGINE_NAME = "milcourts-started-kernel"
papermill_engines.register(ENGINE_NAME, _StartedKernelEngine)


def execute_run(run: Run, staging: Path, settings: BuildSettings, context: dict, events=None) -> dict:
    """Execute one run into `staging` and export it to HTML; returns its manifest entry. The PDF
    is printed by the build (_execute_all), whose one browser prints every report."""
    return export_run_html(*run_notebook(run, staging, settings, context, events), staging)


def run_notebook(
    run: Run, staging: Path, settings: BuildSettings, context: dict, events=None, kernel: StartedKernel | None = None
) -> tuple[dict, nbformat.NotebookNode]:
    """Execute one run's notebook into `staging`; returns its manifest entry (without the HTML:
    export_run_html) and the executed notebook. Cells started are reported to `events` (see
    progress.CellProgress). `kernel`: one started for this run ahead of it (StartedKernel);
    without it the run starts its own. Either way it is shut down when the run ends."""
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
    try:
        kernel = kernel or StartedKernel(run.notebook, settings)
        with _time_limit(settings.run_timeout_seconds, run.name, stop=kernel.kill):
            pm.execute_notebook(
                str(run.notebook),
                str(executed),
                parameters=parameters,
                engine_name=ENGINE_NAME,
                km=kernel.manager,
                kernel_name=KERNEL_NAME,
                cwd=str(settings.root),
                progress_bar=False,
                log_output=True,
                shutdown_kernel="immediate",
                execution_timeout=CELL_TIMEOUT_SECONDS,
                # written once at the end (and on a failing cell), not at every cell's start and end:
                # progress comes from papermill's log, and rewriting the notebook with its charts
                # twice a cell took 0.2-0.6 s a report
                request_save_on_cell_execute=False,
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
        if kernel is not None:
            kernel.close()
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
    outputs = [executed.name]
    if data.is_dir():
        outputs += [f"{data.name}/{path.name}" for path in sorted(data.iterdir()) if path.is_file()]
    entry = {
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
    return entry, notebook


def export_run_html(entry: dict, notebook: nbformat.NotebookNode, staging: Path) -> dict:
    """The executed notebook as code-free HTML beside it in `staging`; returns `entry` with the
    HTML among its outputs."""
    html_path = staging / f"{entry['name']}.html"
    html_path.write_text(export_html(notebook, entry["title"]), encoding="utf-8")
    entry["outputs"][html_path.name] = sha256_of(html_path)
    return entry
