"""Which runs need executing: the build's settings and the cache of published runs.

Kept free of heavy imports (no papermill, nbformat or pandas), so that a rebuild with nothing
changed answers in well under a second: it hashes inputs, compares with reports/manifest.json,
and starts nothing.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from milcourts import paths
from milcourts.build.runfile import Run, load_runs, select_runs
from milcourts.inputs.provenance import code_fingerprint, sha256_of

CELL_TIMEOUT_SECONDS = 600
RUN_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class BuildSettings:
    run_file: Path = paths.RUN_FILE
    root: Path = paths.PROJECT_ROOT
    reports_dir: Path = paths.REPORTS_DIR
    build_dir: Path = paths.BUILD_DIR
    ledger_csv: Path = paths.LEDGER_CSV
    ledger_provenance: Path = paths.LEDGER_PROVENANCE
    # where the fit stage writes and notebooks read: data/processed, or MILCOURTS_PROCESSED_DIR
    processed_dir: Path = field(default_factory=paths.processed_dir)
    main_fit: bool = True  # fit the project ledger's main fit with the model's checks (data/processed/*.csv)
    lock_file: Path = paths.LOCK_FILE
    make_pdf: bool = True
    force: bool = False  # rebuild every selected run even when its cached outputs are current
    jobs: int = 1  # runs executed at once, each in its own process (and kernel)
    run_timeout_seconds: float = RUN_TIMEOUT_SECONDS  # a run taking longer is an error naming it


def package_fingerprint() -> str:
    """The package source and templates: a change to any module may change any report."""
    return code_fingerprint()


def validation_is_stale(ledger_csv: Path, processed_dir: Path) -> bool:
    """Whether the model's validation results in processed_dir are missing, older than the ledger
    or any module of the package (make's rule: by modification time), or for another ledger (by
    its checksum, which the results record). Answered without importing pandas: the warm rebuild
    asks it."""
    record = processed_dir / paths.VALIDATION_INPUTS_CSV
    if not record.is_file() or not ledger_csv.is_file():  # no ledger: validating says so, clearly
        return True
    made = record.stat().st_mtime
    if any(source.stat().st_mtime > made for source in (ledger_csv, *paths.PACKAGE_DIR.rglob("*.py"))):
        return True
    with record.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return not rows or rows[0].get("ledger_sha256") != sha256_of(ledger_csv)


LEDGER_PARAMETER = "ledger_csv"


def notebook_parameter_defaults(notebook: Path) -> dict:
    """The literal defaults of a notebook's `parameters` cell, read without running anything
    (JSON, then the cell's syntax tree); names assigned something other than a literal are left out."""
    defaults = {}
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
                source = cell.get("source", "")
                tree = ast.parse("".join(source) if isinstance(source, list) else source)
                for statement in tree.body:
                    targets = (
                        statement.targets
                        if isinstance(statement, ast.Assign)
                        else [statement.target]
                        if isinstance(statement, ast.AnnAssign)
                        else []
                    )
                    for target in targets:
                        if isinstance(target, ast.Name) and statement.value is not None:
                            try:
                                defaults[target.id] = ast.literal_eval(statement.value)
                            except ValueError:
                                continue
                break
    except (OSError, ValueError, SyntaxError, AttributeError, TypeError):
        return {}
    return defaults


def run_parameters(run: Run) -> dict:
    """What a run's notebook will see: its defaults, overridden by the run file's parameters."""
    return {**notebook_parameter_defaults(run.notebook), **run.parameters}


def run_ledger(run: Run, settings: BuildSettings) -> Path:
    """The ledger a run reads: its `ledger_csv` parameter, else its notebook's default for it,
    else (a notebook that reads no ledger of its own) the build's ledger."""
    value = run_parameters(run).get(LEDGER_PARAMETER)
    if not isinstance(value, str) or not value:
        return settings.ledger_csv
    path = Path(value)
    return path if path.is_absolute() else settings.root / path


def cache_key(run: Run, settings: BuildSettings, ledger_sha256: str, package: str) -> str:
    """Everything a run's outputs depend on: its notebook, parameters and titles, the ledger, the
    package source, the lock, the results in data/processed it may read, files its parameters name
    (another ledger), and whether a PDF is made. Build time and git commit are deliberately absent."""
    named_files = {}
    for name, value in sorted(run.parameters.items()):
        if isinstance(value, str) and value:
            candidate = paths.resolve(value) if not Path(value).is_absolute() else Path(value)
            if candidate.is_file():
                named_files[name] = sha256_of(candidate)
    # the validation tables notebooks read; the fit products are not listed: they are a function of
    # the ledger, the parameters and the package, which the key already holds
    processed = sorted(settings.processed_dir.glob("validation_*.csv")) if settings.processed_dir.is_dir() else []
    parts = {
        "notebook": sha256_of(run.notebook),
        "parameters": run.parameters,
        "title": run.title,
        "subtitle": run.subtitle,
        "ledger": ledger_sha256,
        "package": package,
        "lock": sha256_of(settings.lock_file) if settings.lock_file.is_file() else "",
        "processed": {p.name: sha256_of(p) for p in processed},
        "parameter_files": named_files,
        "pdf": settings.make_pdf,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def is_current(entry: dict | None, key: str, reports_dir: Path) -> bool:
    """A published run is reused only if its key matches and its files are still what was built."""
    if not entry or entry.get("cache_key") != key:
        return False
    return all(
        (reports_dir / name).is_file() and sha256_of(reports_dir / name) == digest
        for name, digest in entry["outputs"].items()
    )


# What a file the build publishes may be called: a plain name inside reports/, never a path.
# A report's files: NAME.html/.pdf/.ipynb, and its data tables in the folder NAME-data/.
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(-data/[A-Za-z0-9][A-Za-z0-9._-]*)?")
DATA_PARAMETER = "data_dir"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RUN_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_TEXT_FIELDS = ("name", "title", "subtitle", "data_vintage", "built_at")
# Formats a report is published in, in the order the index lists them.
OUTPUT_FORMATS = ("html", "pdf", "ipynb")


def is_output_name(name: object) -> bool:
    return isinstance(name, str) and bool(_OUTPUT_NAME.fullmatch(name)) and ".." not in name


def data_folder(run_name: str) -> str:
    """Where a report's data tables are published, inside reports/."""
    return f"{run_name}-data"


def is_own_output(run_name: str, name: str) -> bool:
    """Whether `name` is one a build of `run_name` makes: its formats or its data folder's files."""
    return is_output_name(name) and (name.startswith(f"{run_name}.") or name.startswith(f"{data_folder(run_name)}/"))


def _valid_entry(name: object, entry: object) -> bool:
    """A manifest entry the build can trust to name its own files (anything else is rebuilt)."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or not isinstance(entry, dict):
        return False
    if entry.get("name") != name or not all(isinstance(entry.get(f), str) for f in _TEXT_FIELDS):
        return False
    outputs = entry.get("outputs")
    return (
        isinstance(outputs, dict)
        and bool(outputs)
        and isinstance(entry.get("parameters"), dict)
        and all(is_output_name(n) and isinstance(d, str) and _DIGEST.fullmatch(d) for n, d in outputs.items())
    )


def _recovered_entry(executed: Path) -> dict | None:
    """A manifest entry for a report found on disk without one, from its executed notebook's
    metadata (read as JSON, never run). It has no cache key, so the run is rebuilt when next
    selected; until then the index still lists it."""
    name = executed.stem
    try:
        notebook = json.loads(executed.read_text(encoding="utf-8"))
        metadata = notebook["metadata"]
        ours = metadata["milcourts"]
        entry = {
            "name": name,
            "title": str(metadata.get("title", name)),
            "subtitle": str(ours.get("subtitle", "")),
            "data_vintage": str(ours.get("data_vintage", "unknown")),
            "built_at": str(ours.get("built_at", "unknown")),
            "ledger_sha256": str(ours.get("ledger_sha256", "")),
            "recovered": True,
            "parameters": dict(metadata.get("papermill", {}).get("parameters", {})),
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    entry["outputs"] = {
        f"{name}.{ext}": sha256_of(executed.with_suffix(f".{ext}"))
        for ext in OUTPUT_FORMATS
        if executed.with_suffix(f".{ext}").is_file()
    }
    data = executed.parent / data_folder(name)
    if data.is_dir() and not data.is_symlink():
        entry["outputs"].update(
            {
                f"{data.name}/{path.name}": sha256_of(path)
                for path in sorted(data.iterdir())
                if path.is_file() and not path.is_symlink() and is_output_name(f"{data.name}/{path.name}")
            }
        )
    return entry if _valid_entry(name, entry) else None


def read_manifest(reports_dir: Path) -> dict:
    """reports/manifest.json, trusting only well-formed entries; a missing, truncated or edited
    manifest is a reason to rebuild, never to crash. Reports on disk that it does not list (the
    manifest was deleted or damaged) are recovered from their executed notebooks, so that the
    index keeps listing every report on disk."""
    path = reports_dir / "manifest.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        document = {}
    listed = document.get("reports") if isinstance(document, dict) else None
    reports = (
        {name: entry for name, entry in listed.items() if _valid_entry(name, entry)} if isinstance(listed, dict) else {}
    )
    if reports_dir.is_dir():
        for executed in sorted(reports_dir.glob("*.ipynb")):
            if executed.stem not in reports and _RUN_NAME.fullmatch(executed.stem):
                recovered = _recovered_entry(executed)
                if recovered is not None:
                    reports[executed.stem] = recovered
    return {"reports": reports}


def plan(settings: BuildSettings, only: list[str] | None = None):
    """(ledger sha256, cache key per selected run, runs to execute, published manifest entries)."""
    runs = select_runs(load_runs(settings.run_file, settings.root, check=False), only)
    ledgers = {run.name: run_ledger(run, settings) for run in runs}
    digests = {path: sha256_of(path) if path.is_file() else "" for path in set(ledgers.values())}
    ledger_sha256 = digests.get(settings.ledger_csv) or (
        sha256_of(settings.ledger_csv) if settings.ledger_csv.is_file() else ""
    )
    package = package_fingerprint()
    published = read_manifest(settings.reports_dir)["reports"]
    keys = {run.name: cache_key(run, settings, digests[ledgers[run.name]], package) for run in runs}
    stale = [
        run
        for run in runs
        if settings.force or not is_current(published.get(run.name), keys[run.name], settings.reports_dir)
    ]
    return ledger_sha256, keys, stale, published
