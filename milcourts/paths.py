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

TEMPLATES_DIR = Path(__file__).resolve().parent / "build" / "templates"


def fit_cache_dir() -> Path | None:
    """Where fits shared between reports are kept (fitcache); MILCOURTS_FIT_CACHE moves it, and
    "off" disables it. Read at call time so that a build, a bench or a test can point its kernels
    elsewhere through the environment."""
    setting = os.environ.get("MILCOURTS_FIT_CACHE", "")
    if setting == "off":
        return None
    return Path(setting) if setting else BUILD_DIR / "fit-cache"


def resolve(path: str | Path) -> Path:
    """A path from a notebook parameter or the command line: relative ones are from the project root."""
    path = Path(path)
    return path if path.is_absolute() else PROJECT_ROOT / path
