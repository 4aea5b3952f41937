"""Repository rules that keep reports reproducible: clean notebooks, one source of dependencies."""

from __future__ import annotations

import ast
import re
import tomllib

import nbformat
import pytest
import yaml

from milcourts import paths
from milcourts.build.runfile import load_runs, parameters_cell_index

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs_or_execution_counts(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_with_typed_commented_parameters(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# "), (
        "first cell states the notebook's purpose"
    )
    index = parameters_cell_index(notebook)
    assert index == 1, f"{path.name}: the parameters cell comes right after the purpose"
    for line in notebook.cells[index].source.splitlines():
        assert re.fullmatch(r"[a-z_][a-z0-9_]*: (str|int|float|bool) = .+  # .+", line), (
            f"{path.name}: parameter line is not 'name: type = literal  # comment': {line!r}"
        )
        ast.literal_eval(line.split("=", 1)[1].split("  #", 1)[0].strip())
    longest = max(len(c.source.splitlines()) for c in notebook.cells if c.cell_type == "code")
    assert longest <= 12, f"{path.name}: a code cell of {longest} lines belongs in the package"


def test_every_run_names_an_existing_notebook_with_valid_parameters():
    runs = load_runs()  # raises on a missing notebook, unknown parameter or missing parameters cell
    assert runs


def test_every_notebook_is_built_by_some_run():
    used = {run.notebook for run in load_runs()}
    assert set(NOTEBOOKS) <= used, f"notebooks never built: {sorted(set(NOTEBOOKS) - used)}"


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    environment = yaml.safe_load((paths.PROJECT_ROOT / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert conda == ["python=3.11", "pip"], "conda provides only Python and pip"
    assert pip[-1] == "-e ."
    assert sorted(pip[:-1]) == sorted(declared)
    python_floor = re.search(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    assert conda[0] == f"python={python_floor}"


def test_lock_pins_every_declared_dependency():
    lock = tomllib.loads(paths.LOCK_FILE.read_text())
    locked = {p["name"] for p in lock["package"]}
    project = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in locked, f"{name} is declared but not in uv.lock: run `make lock`"


def test_the_lock_leaves_out_what_pyproject_excludes():
    """An excluded package (the IRI format checker, 2.4 s at every nbformat import) stays out of the
    environment only as long as the lock was made with the exclusion: re-locking without it fails here."""
    lock = tomllib.loads(paths.LOCK_FILE.read_text())
    excluded = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["exclude-dependencies"]
    locked = {p["name"] for p in lock["package"]}
    assert "rfc3987-syntax" in excluded and not locked & set(excluded), sorted(locked & set(excluded))


def test_ci_runs_the_readme_commands():
    ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    commands = re.findall(r"^make [a-z-]+$", ci, flags=re.MULTILINE)
    assert "make test" in commands
    for command in commands:
        assert command in readme, f".ci/run runs {command!r}, which the README does not tell users to run"


def test_raw_data_is_read_only_and_recorded():
    for csv_path in paths.RAW_DATA_DIR.glob("*.csv"):
        record = csv_path.with_suffix(".provenance.yml")
        assert record.is_file(), f"{csv_path.name} has no provenance record"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_figure_is_typed_into_notebook_prose(path):
    """Numbers in reports come from computations; markdown cells hold no digits at all."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            typed = re.findall(r"\d[\d,.%]*", cell.source)
            assert not typed, f"{path.name} cell {index}: typed figures {typed} belong in a narrative function"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes_on_the_package_tests_benchmarks_and_notebooks(command):
    """Lint and formatting as configured in pyproject.toml ([tool.ruff]); `ruff format` fixes the latter."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "milcourts", "tests", "benchmarks", "notebooks"],
        cwd=paths.PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_help_lists_every_parameter_with_its_type_and_comment(path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    notebook = nbformat.read(path, as_version=4)
    for line in notebook.cells[parameters_cell_index(notebook)].source.splitlines():
        name, kind = re.match(r"([a-z_]+): (\w+)", line).groups()
        comment = line.split("  # ", 1)[1]
        assert re.search(rf"{name}: {kind} \(default .*\)\s+{re.escape(comment[:30])}", done.stdout), (
            name,
            done.stdout,
        )


def test_no_file_of_the_package_is_ignored_by_git():
    """A new module that .gitignore swallows (a `build/` pattern once did) works here and is missing
    from every clone."""
    import subprocess

    files = [
        str(p.relative_to(paths.PROJECT_ROOT))
        for p in (paths.PROJECT_ROOT / "milcourts").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=paths.PROJECT_ROOT, capture_output=True, text=True
    )
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.strip() == "", f"ignored by .gitignore: {done.stdout.split()}"
