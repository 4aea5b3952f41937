"""The build on tiny notebooks: success, failures that leave reports/ untouched, parameters, PDF."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import pypdf
import pytest
import yaml

from milcourts import paths
from milcourts.build.execute import KERNEL_ENVIRONMENT, BuildError, notebook_imports
from milcourts.build.incremental import BuildSettings, cache_key, package_fingerprint, validation_is_stale
from milcourts.build.pipeline import build
from milcourts.build.progress import Progress
from milcourts.build.runfile import RunFileError, load_runs
from tests.conftest import write_notebook


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under a directory with its checksum: 'untouched' means equal snapshots."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _project_settings(root: Path, runs: list[dict], make_pdf: bool = False) -> BuildSettings:
    run_file = root / "reports.yaml"
    run_file.write_text(yaml.safe_dump({"reports": runs}), encoding="utf-8")
    return BuildSettings(
        run_file=run_file,
        root=root,
        reports_dir=root / "reports",
        build_dir=root / "build",
        make_pdf=make_pdf,
        processed_dir=root / "processed",
        lock_file=root / "uv.lock",
    )


def _tiny_notebooks(root: Path) -> None:
    write_notebook(root, "hello", ["print(greeting * 2)"])
    write_notebook(root, "boom", ["x = 1", "1 / 0"])


@pytest.fixture
def project(tmp_path):
    """A tiny project root: run file writer and settings pointing into tmp_path."""
    _tiny_notebooks(tmp_path)
    return functools.partial(_project_settings, tmp_path)


HELLO = {
    "name": "hello",
    "notebook": "notebooks/hello.ipynb",
    "title": "Hello report",
    "parameters": {"greeting": "hi"},
}


@pytest.fixture(scope="module")
def hello_published(tmp_path_factory) -> Path:
    """A tiny project with HELLO built once (its root), for tests that start from a published report
    and damage it. Its notebooks and reports/ copied into another project are up to date there (the
    cache key holds no path; the notebooks are copied because each new cell gets a random id), and
    each copy saves a kernel's run."""
    root = tmp_path_factory.mktemp("hello-published")
    _tiny_notebooks(root)
    build(settings=_project_settings(root, [HELLO]))
    return root


def copy_published(published: Path, root: Path) -> None:
    """hello_published's notebooks and reports/ into the project at root."""
    for folder in ("notebooks", "reports"):
        shutil.copytree(published / folder, root / folder, dirs_exist_ok=True)


BOOM = {"name": "boom", "notebook": "notebooks/boom.ipynb", "title": "Boom"}


def test_success_publishes_html_notebook_manifest_and_index(project):
    settings = project([HELLO])
    (entry,) = build(settings=settings)
    reports = settings.reports_dir
    assert sorted(p.name for p in reports.iterdir()) == ["hello.html", "hello.ipynb", "index.html", "manifest.json"]
    html = (reports / "hello.html").read_text(encoding="utf-8")
    assert "hihi" in html  # the output, with the injected parameter
    assert "print(greeting" not in html  # no code
    assert "<h1>Hello report</h1>" in html  # title page, not the file name
    executed = nbformat.read(reports / "hello.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    manifest = json.loads((reports / "manifest.json").read_text())
    assert (
        manifest["reports"]["hello"]["outputs"]["hello.html"]
        == hashlib.sha256((reports / "hello.html").read_bytes()).hexdigest()
    )
    assert entry["data_vintage"] == "2026-01-02"
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert 'href="hello.html"' in index and "2026-01-02" in index
    assert not (settings.build_dir / "staging").exists(), "staging must be cleaned up"


def test_raising_cell_names_notebook_cell_and_error_and_leaves_reports_untouched(project):
    good = project([HELLO])
    build(settings=good)
    before = snapshot(good.reports_dir)
    settings = project([HELLO, BOOM])
    with pytest.raises(BuildError) as raised:
        build(settings=settings)
    message = str(raised.value)
    assert (
        "report 'boom' failed: notebook boom.ipynb, cell 4 of 4 (In [3]): ZeroDivisionError: division by zero"
        in message
    )
    assert "cell source starts: 1 / 0" in message
    assert snapshot(settings.reports_dir) == before  # hello was rebuilt fine but not published alone
    assert (settings.build_dir / "failed" / "boom.ipynb").is_file()
    assert not (settings.build_dir / "staging").exists()


def test_unknown_parameter_is_an_error_before_any_kernel(project):
    settings = project([{**HELLO, "parameters": {"greetin": "typo"}}])
    with pytest.raises(RunFileError, match=r"unknown parameter 'greetin' for hello.ipynb \(it declares: greeting\)"):
        build(settings=settings)
    assert not settings.reports_dir.exists()


def test_wrong_parameter_type_is_an_error(project):
    settings = project([{**HELLO, "parameters": {"greeting": 3}}])
    with pytest.raises(RunFileError, match="parameter 'greeting' must be str, got int 3"):
        build(settings=settings)


def test_notebook_without_parameters_cell_is_an_error(project, make_notebook):
    make_notebook("bare", ["print(1)"], parameters=None)
    settings = project([{"name": "bare", "notebook": "notebooks/bare.ipynb", "title": "Bare"}])
    with pytest.raises(RunFileError, match="has no cell tagged 'parameters'"):
        build(settings=settings)


def test_run_file_problems_are_all_listed(project):
    settings = project(
        [
            {"name": "Bad Name", "notebook": "notebooks/hello.ipynb", "title": "x"},
            {"name": "missing", "notebook": "notebooks/nope.ipynb", "title": "x"},
            {"name": "hello", "notebook": "notebooks/hello.ipynb"},
        ]
    )
    with pytest.raises(RunFileError) as raised:
        build(settings=settings)
    message = str(raised.value)
    assert "name must be lower-case letters" in message
    assert "notebook notebooks/nope.ipynb does not exist" in message
    assert "missing key 'title'" in message


def test_only_builds_one_run_and_keeps_the_others_in_the_index(project, make_notebook):
    make_notebook("other", ["print('other')"])
    other = {"name": "other", "notebook": "notebooks/other.ipynb", "title": "Other"}
    settings = project([HELLO, other])
    build(only=["hello"], settings=settings)
    assert not (settings.reports_dir / "other.html").exists()
    build(only=["other"], settings=settings)
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    assert sorted(manifest["reports"]) == ["hello", "other"]
    with pytest.raises(RunFileError, match="no run named nope; runs are: hello, other"):
        build(only=["nope"], settings=settings)


def test_stderr_output_fails_the_build(project, make_notebook):
    make_notebook("noisy", ["import warnings; warnings.warn('stray warning')"])
    settings = project([{"name": "noisy", "notebook": "notebooks/noisy.ipynb", "title": "Noisy"}])
    with pytest.raises(BuildError, match="(?s)wrote to stderr.*cell 2: .*UserWarning: stray warning"):
        build(settings=settings)


def test_ledger_text_in_titles_is_escaped(project):
    settings = project([{**HELLO, "title": "<script>alert(1)</script>", "subtitle": "<img src=x onerror=alert(1)>"}])
    build(settings=settings)
    for name in ("hello.html", "index.html"):
        text = (settings.reports_dir / name).read_text(encoding="utf-8")
        assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.slow
def test_pdf_has_title_and_cyrillic_text_and_no_code(project, make_notebook):
    make_notebook(
        "cyrillic",
        ['from IPython.display import HTML, display\ndisplay(HTML("<p>Самовольное оставление части, статья 337</p>"))'],
    )
    settings = project(
        [{"name": "cyrillic", "notebook": "notebooks/cyrillic.ipynb", "title": "Отказ воевать: a test report"}],
        make_pdf=True,
    )
    build(settings=settings)
    pdf = pypdf.PdfReader(settings.reports_dir / "cyrillic.pdf")
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Отказ воевать: a test report" in pdf.pages[0].extract_text()  # title page
    assert "Самовольное оставление части, статья 337" in text
    assert "display(HTML" not in text
    assert pdf.pages[0].mediabox.width == pytest.approx(595, abs=2)  # A4, not Letter
    fonts = {
        str(f.get_object().get("/BaseFont"))
        for p in pdf.pages
        for f in p.get("/Resources", {}).get("/Font", {}).values()
    }
    assert any("DejaVuSans" in f for f in fonts), fonts  # embedded, Cyrillic-capable


def test_kernels_run_with_one_blas_thread_and_the_fixed_malloc_threshold(project, make_notebook):
    """What KERNEL_ENVIRONMENT is for: kernels that do not oversubscribe the cores (--jobs) and
    do not fault in fresh pages for every numpy temporary. Read back from inside a kernel."""
    names = sorted(KERNEL_ENVIRONMENT)
    make_notebook(
        "environment",
        ["import os\n" + "".join(f"print('{name}=' + os.environ.get('{name}', 'unset'))\n" for name in names)],
    )
    settings = project([{"name": "environment", "notebook": "notebooks/environment.ipynb", "title": "Environment"}])
    build(settings=settings)
    html = (settings.reports_dir / "environment.html").read_text(encoding="utf-8")
    for name in names:
        assert f"{name}={KERNEL_ENVIRONMENT[name]}" in html
    assert "OPENBLAS_NUM_THREADS=1" in html and f"MALLOC_MMAP_THRESHOLD_={32 * 2**20}" in html


def test_notebook_imports_are_its_top_level_imports_each_undone(make_notebook):
    path = make_notebook(
        "imports",
        [
            "import os.path, json as js\nfrom collections import OrderedDict, deque as dq\nx = 1",
            "%matplotlib inline\nimport csv",  # not plain Python: left to the notebook
            "if True:\n    import glob\nfrom os import *\nfrom . import sibling",
        ],
    )
    assert notebook_imports(path) == [
        "import os.path, json as js",
        "from collections import OrderedDict, deque as dq",
        "from os import *",
    ]


def test_a_kernel_started_ahead_has_the_notebooks_modules_loaded_and_none_of_their_names(project, make_notebook):
    """The next run's kernel imports what its notebook imports as it starts, and the notebook still
    finds a namespace without them (the build's kernels start this way whether serial or not)."""
    make_notebook(
        "ahead",
        ["import sys\nprint('loaded', 'colorsys' in sys.modules, 'bound', 'colorsys' in globals())", "import colorsys"],
    )
    settings = project([HELLO, {"name": "ahead", "notebook": "notebooks/ahead.ipynb", "title": "Ahead"}])
    build(settings=settings)
    assert "loaded True bound False" in (settings.reports_dir / "ahead.html").read_text(encoding="utf-8")


def test_kernels_started_ahead_are_shut_down_when_a_run_fails(project, make_notebook, monkeypatch):
    """A serial build starts each run's kernel while the run before it executes; a failure in the
    first run leaves no kernel running and no socket folder behind, the kernels started for the
    runs that never came included."""
    import milcourts.build.execute as build_module

    started = []

    class Recorded(build_module.StartedKernel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(build_module, "StartedKernel", Recorded)
    runs = [BOOM, HELLO, {**HELLO, "name": "hello-two"}]
    with pytest.raises(BuildError, match="boom"):
        build(settings=project(runs))
    assert len(started) >= 2  # the failing run's and the next one's, started ahead
    for kernel in started:
        assert not kernel.manager.has_kernel and not kernel.sockets.exists()


def test_same_inputs_give_byte_identical_html(project, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1763740800")
    settings = project([HELLO])
    outputs = []
    for _ in range(2):
        build(settings=settings)
        outputs.append((settings.reports_dir / "hello.html").read_bytes())
    assert outputs[0] == outputs[1]
    assert b"2025-11-21 16:00 UTC" in outputs[0]  # the stamp comes from SOURCE_DATE_EPOCH


# ----------------------------------------------------------------------------- incremental builds


def test_rebuild_with_nothing_changed_starts_no_kernel_and_touches_nothing(project, monkeypatch):
    settings = project([HELLO])
    assert [e["name"] for e in build(settings=settings)] == ["hello"]
    before = snapshot(settings.reports_dir)
    import milcourts.build.execute as build_module

    def no_kernel(*args, **kwargs):
        raise AssertionError("a cached run started a kernel")

    monkeypatch.setattr(build_module.pm, "execute_notebook", no_kernel)
    monkeypatch.setattr(build_module, "StartedKernel", no_kernel)
    assert build(settings=settings) == []
    assert snapshot(settings.reports_dir) == before


def test_changing_one_runs_parameters_reexecutes_only_that_run(project):
    other = {**HELLO, "name": "hello-two", "parameters": {"greeting": "yo"}}
    settings = project([HELLO, other])
    build(settings=settings)
    settings = project([HELLO, {**other, "parameters": {"greeting": "hey"}}])
    assert [e["name"] for e in build(settings=settings)] == ["hello-two"]
    assert "heyhey" in (settings.reports_dir / "hello-two.html").read_text()
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    assert set(manifest["reports"]) == {"hello", "hello-two"}


def test_force_and_damaged_outputs_rebuild(project, hello_published, tmp_path):
    settings = project([HELLO])
    copy_published(hello_published, tmp_path)
    assert build(settings=settings) == []
    assert [e["name"] for e in build(settings=replace(settings, force=True))] == ["hello"]
    (settings.reports_dir / "hello.html").write_text("tampered", encoding="utf-8")
    assert [e["name"] for e in build(settings=settings)] == ["hello"]
    assert "hihi" in (settings.reports_dir / "hello.html").read_text()


def test_validation_is_stale_when_missing_older_than_its_inputs_or_for_another_ledger(tmp_path, monkeypatch):
    package = tmp_path / "package"
    package.mkdir()
    module = package / "model.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(paths, "PACKAGE_DIR", package)
    ledger, processed = tmp_path / "ledger.csv", tmp_path / "processed"
    ledger.write_text("figure_id,value\nF001,5\n")
    processed.mkdir()
    assert validation_is_stale(ledger, processed)  # never validated
    assert validation_is_stale(tmp_path / "missing.csv", processed)  # validating it reports the missing file
    record = processed / paths.VALIDATION_INPUTS_CSV
    record.write_text(f"ledger_sha256,replicates\n{hashlib.sha256(ledger.read_bytes()).hexdigest()},200\n")
    made = record.stat().st_mtime
    os.utime(ledger, (made - 10, made - 10))
    os.utime(module, (made - 10, made - 10))
    assert not validation_is_stale(ledger, processed)
    os.utime(module, (made + 10, made + 10))  # a module changed since
    assert validation_is_stale(ledger, processed)
    os.utime(module, (made - 10, made - 10))
    os.utime(ledger, (made + 10, made + 10))  # the ledger changed since
    assert validation_is_stale(ledger, processed)
    os.utime(ledger, (made - 10, made - 10))
    record.write_text("ledger_sha256,replicates\nabc,200\n")  # another ledger's results, written later
    assert validation_is_stale(ledger, processed)


def test_the_build_command_validates_first_when_stale_and_stops_if_that_fails(monkeypatch, tmp_path):
    from milcourts import __main__ as cli

    asked = []
    monkeypatch.setattr(cli, "_run_validation", lambda ledger, *rest: asked.append(ledger) or 1)
    monkeypatch.setenv("MILCOURTS_PROCESSED_DIR", str(tmp_path / "empty"))  # no validation results there
    assert cli.main(["build", "--validate-if-stale", "--reports-dir", str(tmp_path / "reports")]) == 1
    assert asked == [paths.LEDGER_CSV] and not (tmp_path / "reports").exists()


def test_validating_a_missing_ledger_is_a_clear_error(tmp_path, capsys):
    """What the build's --validate-if-stale runs when the ledger is gone (it counts as stale)."""
    from milcourts import __main__ as cli

    assert cli._run_validation(tmp_path / "missing.csv") == 1
    assert "missing.csv: expected an existing ledger file (not found)" in capsys.readouterr().err


def test_cache_key_changes_with_each_input(project, tmp_path):
    settings = project([HELLO])
    run = load_runs(settings.run_file, settings.root)[0]
    settings.processed_dir.mkdir()
    settings.lock_file.write_text("lock v1")
    base = cache_key(run, settings, "ledger-a", "package-a")
    assert cache_key(run, settings, "ledger-a", "package-a") == base  # stable
    assert cache_key(run, settings, "ledger-b", "package-a") != base
    assert cache_key(run, settings, "ledger-a", "package-b") != base
    assert cache_key(replace(run, parameters={"greeting": "ho"}), settings, "ledger-a", "package-a") != base
    assert cache_key(run, replace(settings, make_pdf=True), "ledger-a", "package-a") != base
    settings.lock_file.write_text("lock v2")
    assert cache_key(run, settings, "ledger-a", "package-a") != base
    base = cache_key(run, settings, "ledger-a", "package-a")
    (settings.processed_dir / "validation_inputs.csv").write_text("ledger_sha256\nabc\n")
    assert cache_key(run, settings, "ledger-a", "package-a") != base
    base = cache_key(run, settings, "ledger-a", "package-a")
    notebook = nbformat.read(run.notebook, as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell("More prose."))
    nbformat.write(notebook, run.notebook)
    assert cache_key(run, settings, "ledger-a", "package-a") != base
    # a file a parameter names (another ledger) is part of the key by content
    data = tmp_path / "other.csv"
    data.write_text("v1")
    with_file = replace(run, parameters={"greeting": str(data)})
    first = cache_key(with_file, settings, "ledger-a", "package-a")
    data.write_text("v2")
    assert cache_key(with_file, settings, "ledger-a", "package-a") != first


def test_package_fingerprint_is_stable():
    assert package_fingerprint() == package_fingerprint()


# ----------------------------------------------------------------------------- jobs, time limits, logs


def test_jobs_run_in_parallel_processes_and_publish_all(project, make_notebook, capsys):
    make_notebook("pid", ["import os\nprint(os.getppid())"])
    runs = [
        {"name": f"pid-{i}", "notebook": "notebooks/pid.ipynb", "title": f"Pid {i}", "parameters": {"greeting": str(i)}}
        for i in range(3)
    ]
    settings = replace(project(runs), jobs=2)
    entries = build(settings=settings)
    assert sorted(e["name"] for e in entries) == ["pid-0", "pid-1", "pid-2"]
    parents = set()
    for run in runs:
        notebook = nbformat.read(settings.reports_dir / f"{run['name']}.ipynb", as_version=4)
        parents.add(notebook.cells[-1].outputs[0]["text"].strip())
    assert str(os.getpid()) not in parents  # kernels were started by worker processes, not the build
    assert (settings.build_dir / "logs" / "pid-0.log").read_text().count("Executing Cell") >= 2
    # the workers' cell events reach the progress display of the build process
    progress = capsys.readouterr().err
    assert re.search(r"\] [0-2]/3 runs \| (.+, )?pid-\d cell \d/\d", progress)
    assert "[########################] 3/3 runs" in progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_line_redrawn_on_a_terminal_and_lines_in_a_log():
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        progress = Progress(2, stream)
        progress.put(("a", 1, 4))
        progress.put(("b", 3, 10))
        progress.finished("a", 1.25)
        progress.close()
    assert terminal.getvalue() == (
        "\r\033[K[........................] 0/2 runs | a cell 1/4"
        "\r\033[K[........................] 0/2 runs | a cell 1/4, b cell 3/10"
        "\r\033[Ka: done in 1.2 s\n"
        "\r\033[K[############............] 1/2 runs | b cell 3/10\n"
    )
    assert log.getvalue().splitlines() == [
        "[........................] 0/2 runs | a cell 1/4",
        "[........................] 0/2 runs | a cell 1/4, b cell 3/10",
        "a: done in 1.2 s",
        "[############............] 1/2 runs | b cell 3/10",
    ]


def test_a_run_over_its_time_limit_is_an_error_naming_it(project, make_notebook):
    make_notebook("slow", ["import time\ntime.sleep(30)"])
    settings = project([HELLO, {"name": "slow", "notebook": "notebooks/slow.ipynb", "title": "Slow"}])
    build(only=["hello"], settings=settings)
    before = snapshot(settings.reports_dir)
    # the slow run alone under a short limit (the test waits out the limit: a long one was idle time)
    with pytest.raises(BuildError, match=r"report 'slow' did not finish within its time limit of 3 s"):
        build(only=["slow"], settings=replace(settings, run_timeout_seconds=3, force=True))
    assert snapshot(settings.reports_dir) == before


# ----------------------------------------------------------------------------- hostile input, interruptions


@pytest.mark.parametrize("content", [b"this is not json", b"", b"{}", b'{"cells": 3}', b"\xff\xfe"])
def test_a_notebook_entry_that_is_not_a_notebook_is_a_clear_error(project, tmp_path, content):
    (tmp_path / "notebooks" / "fake.ipynb").write_bytes(content)
    settings = project([{"name": "fake", "notebook": "notebooks/fake.ipynb", "title": "Fake"}])
    with pytest.raises(RunFileError, match=r"\(fake\): \S*notebooks/fake.ipynb is not a Jupyter notebook"):
        build(settings=settings)
    assert not settings.reports_dir.exists()


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "{}",
        "a list",
        "an entry without outputs",
        "outputs outside reports/",
        "a reader's file as an output",
    ],
)
def test_a_damaged_manifest_is_a_reason_to_rebuild_never_a_crash(project, hello_published, tmp_path, damage, force):
    settings = project([HELLO])
    copy_published(hello_published, tmp_path)
    assert build(settings=settings) == []  # published and current: the damage alone makes it rebuild
    manifest = settings.reports_dir / "manifest.json"
    text = manifest.read_text()
    (tmp_path / "precious.txt").write_text("not the build's")
    (settings.reports_dir / "hello.notes.txt").write_text("a reader's notes")
    hostile = json.loads(text)
    hostile["reports"]["hello"]["outputs"]["../precious.txt"] = "0" * 64
    forged = json.loads(text)
    forged["reports"]["hello"]["outputs"]["hello.notes.txt"] = "0" * 64
    manifest.write_text(
        {
            "truncated": text[: len(text) // 2],
            "empty": "",
            "{}": "{}",
            "a list": "[1, 2]",
            "an entry without outputs": json.dumps({"reports": {"hello": {"name": "hello"}}}),
            "outputs outside reports/": json.dumps(hostile),
            "a reader's file as an output": json.dumps(forged),
        }[damage]
    )
    assert [e["name"] for e in build(settings=replace(settings, force=force))] == ["hello"]
    rebuilt = json.loads(manifest.read_text())
    assert set(rebuilt["reports"]) == {"hello"}
    assert (tmp_path / "precious.txt").read_text() == "not the build's"
    assert (settings.reports_dir / "hello.notes.txt").read_text() == "a reader's notes"
    assert set(rebuilt["reports"]["hello"]["outputs"]) == {"hello.html", "hello.ipynb"}


def test_after_the_manifest_is_deleted_the_index_still_lists_every_report_on_disk(project, make_notebook):
    make_notebook("other", ["print('other')"])
    other = {"name": "other", "notebook": "notebooks/other.ipynb", "title": "Other report"}
    settings = project([HELLO, other])
    build(settings=settings)
    (settings.reports_dir / "manifest.json").unlink()
    assert [e["name"] for e in build(only=["hello"], settings=settings)] == ["hello"]
    index = (settings.reports_dir / "index.html").read_text(encoding="utf-8")
    assert 'href="hello.html"' in index and 'href="other.html"' in index and "Other report" in index
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    assert sorted(manifest["reports"]) == ["hello", "other"]
    assert (
        manifest["reports"]["other"]["outputs"]["other.html"]
        == hashlib.sha256((settings.reports_dir / "other.html").read_bytes()).hexdigest()
    )
    # a recovered entry has no cache key: the next build of that run executes it again
    assert [e["name"] for e in build(settings=settings)] == ["other"]


def test_a_runs_own_ledger_is_checked_against_its_provenance_and_recorded(project, make_notebook, write_ledger):
    from milcourts.inputs.provenance import ProvenanceError, sha256_of, write_record
    from tests.conftest import row

    make_notebook(
        "ledgered",
        ["print('read', ledger_csv)"],
        parameters='ledger_csv: str = "data/raw/published_figures.csv"  # ledger to read',
    )
    other = write_ledger([row(source_date="2024-05-06")], name="other.csv")
    settings = project(
        [
            {
                "name": "ledgered",
                "notebook": "notebooks/ledgered.ipynb",
                "title": "Ledgered",
                "parameters": {"ledger_csv": str(other)},
            }
        ]
    )
    with pytest.raises(ProvenanceError, match=r"other.provenance.yml: provenance record not found"):
        build(settings=settings)
    assert not settings.reports_dir.exists()
    write_record(other, copied_from="a test", description="one figure, for a test")
    (entry,) = build(settings=settings)
    assert entry["ledger_sha256"] == sha256_of(other)
    assert entry["data_vintage"] == "2024-05-06"
    html = (settings.reports_dir / "ledgered.html").read_text(encoding="utf-8")
    assert "2024-05-06" in html and sha256_of(other)[:12] in html
    other.write_text(other.read_text().replace("5092", "5093"))  # edited in place
    with pytest.raises(ProvenanceError, match=r"other.csv: sha256 is"):
        build(settings=settings)


def test_a_notebooks_default_ledger_is_the_one_checked(project, make_notebook, tmp_path):
    """Without a ledger_csv in the run file, the notebook's own default is what it reads."""
    make_notebook(
        "ledgered",
        ["print('read', ledger_csv)"],
        parameters='ledger_csv: str = "data/raw/published_figures.csv"  # ledger to read',
    )
    settings = project([{"name": "ledgered", "notebook": "notebooks/ledgered.ipynb", "title": "Ledgered"}])
    from milcourts.inputs.provenance import ProvenanceError

    with pytest.raises(ProvenanceError, match=r"data/raw/published_figures.csv: raw file not found"):
        build(settings=settings)  # tmp_path/data/raw holds no ledger: the default is resolved from the root
    shutil.copytree(paths.RAW_DATA_DIR, tmp_path / "data" / "raw")
    (entry,) = build(settings=settings)
    assert entry["data_vintage"] == "2026-01-02"


@pytest.mark.slow
def test_a_build_without_pdf_leaves_no_stale_pdf(project):
    settings = project([HELLO], make_pdf=True)
    build(settings=settings)
    assert (settings.reports_dir / "hello.pdf").is_file()
    build(settings=replace(settings, make_pdf=False))
    manifest = json.loads((settings.reports_dir / "manifest.json").read_text())
    listed = {name for entry in manifest["reports"].values() for name in entry["outputs"]}
    on_disk = {p.name for p in settings.reports_dir.iterdir()}
    assert on_disk == listed | {"index.html", "manifest.json"}
    assert "hello.pdf" not in on_disk and 'href="hello.pdf"' not in (settings.reports_dir / "index.html").read_text()


def _cli_project(root: Path, make_notebook, cells: list[str]) -> dict:
    """A project root the CLI can build in its own process: the real raw data, one notebook."""
    shutil.copytree(paths.RAW_DATA_DIR, root / "data" / "raw")
    make_notebook("slow", cells)
    (root / "reports.yaml").write_text(
        yaml.safe_dump({"reports": [{"name": "slow", "notebook": "notebooks/slow.ipynb", "title": "Slow"}]})
    )
    return {**os.environ, "MILCOURTS_ROOT": str(root)}


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _ignore_sigint():
    """What a non-interactive shell does to a job it starts with '&'."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "when"),
    [
        (signal.SIGINT, "while the kernel starts"),
        (signal.SIGINT, "while a cell runs"),
        (signal.SIGTERM, "while a cell runs"),
    ],
    ids=["SIGINT, kernel starting", "SIGINT, cell running", "SIGTERM, cell running"],
)
def test_a_signal_to_the_build_process_alone_stops_it_without_publishing(tmp_path, make_notebook, signum, when):
    """A real build in its own process, started as a shell's background job (SIGINT ignored)."""
    env = _cli_project(
        tmp_path, make_notebook, ["import pathlib, time\npathlib.Path('started').touch()\ntime.sleep(30)"]
    )
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "slow.html").write_text("last good report")
    before = snapshot(reports)
    process = subprocess.Popen(
        [sys.executable, "-m", "milcourts", "build", "--no-pdf"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    _wait_for(tmp_path / ("build/logs/slow.log" if when == "while the kernel starts" else "started"), process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err  # as a shell reports a process ended by the signal
    assert f"build interrupted by signal {int(signum)}; reports/ left untouched" in err
    assert snapshot(reports) == before
    assert not (tmp_path / "build" / "staging").exists()


def test_a_signal_while_kernels_run_kills_them_and_the_interruption_is_raised_after():
    """Inside jupyter's kernel client no exception is raised by a signal: the kernels are killed
    (the client then fails on its own) and the interruption is raised once the block ends, or in
    place of the error the killed kernel caused."""
    from milcourts.build.pipeline import BuildInterrupted, _interrupts_as_errors

    calls = []
    with pytest.raises(BuildInterrupted) as raised:
        with _interrupts_as_errors() as interrupts:
            with interrupts.stopping(lambda: calls.append("kernels killed")):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler runs here and raises nothing
                calls.append("the block went on")
    assert calls == ["kernels killed", "the block went on"] and raised.value.signum == signal.SIGTERM
    with pytest.raises(BuildInterrupted):
        with _interrupts_as_errors() as interrupts:
            with interrupts.stopping(lambda: None):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                raise RuntimeError("Kernel died before replying to kernel_info")
    with pytest.raises(BuildInterrupted):  # outside the block a signal still raises at once
        with _interrupts_as_errors():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


@pytest.mark.slow
def test_a_second_build_in_the_same_checkout_refuses_while_the_first_runs(tmp_path, make_notebook):
    env = _cli_project(
        tmp_path,
        make_notebook,
        [
            "import pathlib, time\npathlib.Path('started').touch()\n"
            "for _ in range(600):\n    if pathlib.Path('release').exists():\n        break\n    time.sleep(0.1)"
        ],
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "milcourts", "build", "--no-pdf"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(tmp_path / "started", first)
    log_before = (tmp_path / "build" / "logs" / "slow.log").read_text()
    second = subprocess.run(
        [sys.executable, "-m", "milcourts", "build", "--no-pdf", "--force"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"another build is running in this checkout (process {first.pid}" in second.stderr
    assert (tmp_path / "build" / "logs" / "slow.log").read_text().startswith(log_before)
    (tmp_path / "release").touch()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert (tmp_path / "reports" / "slow.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ['{"reports": '])
def test_the_command_line_rebuilds_over_a_damaged_manifest(tmp_path, make_notebook, damage):
    """The command line, with and without --force, over a truncated manifest: exit 0, no traceback.
    Every other damage (empty, "{}", a list, hostile outputs...) goes through the same build()
    in test_a_damaged_manifest_is_a_reason_to_rebuild_never_a_crash; here a process cost 4 s a run."""
    env = _cli_project(tmp_path, make_notebook, ["print('fine')"])
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "manifest.json").write_text(damage)
    for extra in ([], ["--force"]):
        done = subprocess.run(
            [sys.executable, "-m", "milcourts", "build", "--no-pdf", *extra],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        (tmp_path / "reports" / "manifest.json").write_text(damage)
