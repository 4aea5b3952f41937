"""Which runs need executing: the build's settings and the cache of published runs.

Kept free of heavy imports (no papermill, nbformat or pandas), so that a rebuild with nothing
changed answers in well under a second: it hashes inputs, compares with reports/manifest.json,
and starts nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from milcourts import paths
from milcourts.provenance import sha256_of
from milcourts.runfile import Run, load_runs, select_runs

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
    processed_dir: Path = paths.PROCESSED_DATA_DIR  # results notebooks may read (validation tables)
    lock_file: Path = paths.LOCK_FILE
    make_pdf: bool = True
    force: bool = False  # rebuild every selected run even when its cached outputs are current
    jobs: int = 1  # runs executed at once, each in its own process (and kernel)
    run_timeout_seconds: float = RUN_TIMEOUT_SECONDS  # a run taking longer is an error naming it


PACKAGE_DIR = Path(__file__).resolve().parent


def package_fingerprint() -> str:
    """The package source and templates: a change to any module may change any report. Paths are
    taken relative to the package, so two checkouts of one commit agree."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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
    processed = sorted(settings.processed_dir.glob("*.csv")) if settings.processed_dir.is_dir() else []
    parts = {
        "notebook": sha256_of(run.notebook), "parameters": run.parameters, "title": run.title,
        "subtitle": run.subtitle, "ledger": ledger_sha256, "package": package,
        "lock": sha256_of(settings.lock_file) if settings.lock_file.is_file() else "",
        "processed": {p.name: sha256_of(p) for p in processed}, "parameter_files": named_files,
        "pdf": settings.make_pdf,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def is_current(entry: dict | None, key: str, reports_dir: Path) -> bool:
    """A published run is reused only if its key matches and its files are still what was built."""
    if not entry or entry.get("cache_key") != key:
        return False
    return all((reports_dir / name).is_file() and sha256_of(reports_dir / name) == digest
               for name, digest in entry["outputs"].items())


def read_manifest(reports_dir: Path) -> dict:
    path = reports_dir / "manifest.json"
    if not path.is_file():
        return {"reports": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def plan(settings: BuildSettings, only: list[str] | None = None):
    """(ledger sha256, cache key per selected run, runs to execute, published manifest entries)."""
    runs = select_runs(load_runs(settings.run_file, settings.root, check=False), only)
    ledger_sha256 = sha256_of(settings.ledger_csv)
    package = package_fingerprint()
    published = read_manifest(settings.reports_dir)["reports"]
    keys = {run.name: cache_key(run, settings, ledger_sha256, package) for run in runs}
    stale = [run for run in runs
             if settings.force or not is_current(published.get(run.name), keys[run.name], settings.reports_dir)]
    return ledger_sha256, keys, stale, published
