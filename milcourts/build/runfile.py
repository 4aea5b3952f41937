"""The run file: the one list of reports the build makes, each a notebook with its parameters.

Parameters are checked against the notebook's own `parameters` cell before any kernel starts,
because papermill only warns about unknown names or a missing cell and then runs the notebook with
its defaults, which would publish a report that silently ignored what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from milcourts import paths

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_REQUIRED_KEYS = ("name", "notebook", "title")
_ALLOWED_KEYS = (*_REQUIRED_KEYS, "subtitle", "parameters")
# papermill's inferred type name -> Python types a value may have
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


class RunFileError(ValueError):
    """The run file or a notebook it names cannot be run as written."""


@dataclass(frozen=True)
class Run:
    name: str
    notebook: Path
    title: str
    subtitle: str = ""
    parameters: dict = field(default_factory=dict)


def parameters_cell_index(notebook) -> int | None:
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    return None


def read_notebook(path: Path, where: str):
    """The notebook at `path`, validated against the notebook schema; RunFileError if it is not one
    (any bytes can sit behind a `notebook:` entry)."""
    import nbformat  # imported here: a cached rebuild never needs it (see incremental.py)

    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # noqa: BLE001 - NotJSONError, ValidationError, KeyError, Unicode...
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise RunFileError(f"{where}: {path} is not a Jupyter notebook ({type(error).__name__}: {reason})") from error
    return notebook


def check_parameters(run: Run, where: str) -> list[str]:
    """Problems with a run's parameters against its notebook's `parameters` cell."""
    import papermill as pm

    try:
        notebook = read_notebook(run.notebook, where)
    except RunFileError as error:
        return [str(error)]
    if parameters_cell_index(notebook) is None:
        return [f"{where}: notebook {run.notebook} has no cell tagged 'parameters'"]
    declared = pm.inspect_notebook(str(run.notebook))
    problems = []
    for name, value in run.parameters.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"{where}: unknown parameter {name!r} for {run.notebook.name} (it declares: {known})")
            continue
        expected = _TYPES.get(declared[name]["inferred_type_name"])
        wrong_bool = isinstance(value, bool) and bool not in (expected or ())
        if expected and (not isinstance(value, expected) or wrong_bool):
            problems.append(
                f"{where}: parameter {name!r} must be {declared[name]['inferred_type_name']}, "
                f"got {type(value).__name__} {value!r}"
            )
    return problems


def load_runs(run_file: Path = paths.RUN_FILE, root: Path = paths.PROJECT_ROOT, check: bool = True) -> list[Run]:
    """Every run in the run file, checked; raises RunFileError listing every problem found.
    `check=False` skips the parameters-against-notebook check (the build makes it for the runs it
    executes)."""
    try:
        document = yaml.safe_load(Path(run_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunFileError(f"{run_file}: cannot read run file: {exc}") from exc
    entries = document.get("reports") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RunFileError(f"{run_file}: expected a top-level 'reports:' list with at least one run")
    runs, problems, seen = [], [], set()
    for position, entry in enumerate(entries, start=1):
        where = f"{run_file} run {position}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with keys {', '.join(_REQUIRED_KEYS)}")
            continue
        where = f"{run_file} run {position} ({entry.get('name', '?')})"
        missing = [k for k in _REQUIRED_KEYS if not entry.get(k)]
        unknown = [k for k in entry if k not in _ALLOWED_KEYS]
        if missing or unknown:
            problems += [f"{where}: missing key {k!r}" for k in missing]
            problems += [f"{where}: unknown key {k!r} (allowed: {', '.join(_ALLOWED_KEYS)})" for k in unknown]
            continue
        name = str(entry["name"])
        if not _NAME.fullmatch(name):
            problems.append(f"{where}: name must be lower-case letters, digits and '-', got {name!r}")
        if name in seen:
            problems.append(f"{where}: duplicate run name {name!r}")
        seen.add(name)
        notebook = (Path(root) / entry["notebook"]).resolve()
        if not notebook.is_file():
            problems.append(f"{where}: notebook {entry['notebook']} does not exist")
            continue
        parameters = entry.get("parameters") or {}
        if not isinstance(parameters, dict):
            problems.append(f"{where}: 'parameters' must be a mapping of name: value")
            continue
        run = Run(name, notebook, str(entry["title"]), str(entry.get("subtitle", "")), parameters)
        if check:
            problems += check_parameters(run, where)
        runs.append(run)
    if problems:
        raise RunFileError("\n".join(problems))
    return runs


def select_runs(runs: list[Run], only: list[str] | None) -> list[Run]:
    if not only:
        return runs
    names = {r.name for r in runs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise RunFileError(f"no run named {', '.join(unknown)}; runs are: {', '.join(sorted(names))}")
    return [r for r in runs if r.name in only]
