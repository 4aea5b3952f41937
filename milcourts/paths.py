"""Every path the project reads or writes, built in one place so no notebook or test builds its own."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("MILCOURTS_ROOT", Path(__file__).resolve().parent.parent))

DATA_DIR = PROJECT_ROOT / "data"
RAW_DATA_DIR = DATA_DIR / "raw"
PROCESSED_DATA_DIR = DATA_DIR / "processed"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
REPORTS_DIR = PROJECT_ROOT / "reports"
# Staging, failed runs and logs live here, on the same filesystem as reports/ so publishing is a rename.
BUILD_DIR = PROJECT_ROOT / "build"

LEDGER_CSV = RAW_DATA_DIR / "published_figures.csv"
LEDGER_PROVENANCE = RAW_DATA_DIR / "published_figures.provenance.yml"
RUN_FILE = PROJECT_ROOT / "reports.yaml"
LOCK_FILE = PROJECT_ROOT / "uv.lock"

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "build" / "templates"
# What `milcourts validate` was run on (the ledger's checksum, the replicates), in processed_dir():
# read by the reports, and by the build to tell whether the validation is stale.
VALIDATION_INPUTS_CSV = "validation_inputs.csv"


def processed_dir() -> Path:
    """Where the fit stage's products are: data/processed, unless MILCOURTS_PROCESSED_DIR says
    otherwise (the build points its kernels at the folder it wrote to). Read at call time."""
    setting = os.environ.get("MILCOURTS_PROCESSED_DIR", "")
    return Path(setting) if setting else PROCESSED_DATA_DIR


def resolve(path: str | Path) -> Path:
    """A path from a notebook parameter or the command line: relative ones are from the project root."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path
