"""Fits shared between reports, computed once per build.

Every trend run and the summary fit the same joint model to the same ledger (the model is always
joint; a report only looks at one article), and each trend run refits the same sensitivity
variants. Without sharing, a cold build repeats identical fits a dozen times. A fit and its draws
are a deterministic function of the ledger rows, the spec (seed included), the package source and
the numerical libraries, so they are stored under a hash of exactly those and reused.

Parallel runs (`build --jobs N`) do not duplicate work: a fit being computed by another process
is skipped for the moment (an exclusive lock per key), the caller does its other pending fits
first, then waits for the holder.

The cache directory may be one a user points us at (MILCOURTS_FIT_CACHE), so nothing in it is
ours unless we made it: entries live in a folder named `milcourts-fits-<code version>` holding a
marker file we wrote, and only such folders are ever removed (when the code changes). Entries are
stored by fitstore in formats that cannot execute code, verified before they are parsed; a damaged
one is silently refitted and replaced (a warning printed in a report kernel would fail the build).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from milcourts import paths
from milcourts.inputs.constraints import build_constraint_view
from milcourts.products.store import read_entry, write_entry
from milcourts.build.incremental import package_fingerprint
from milcourts.model.fit import fit_filings_model, FittedModel
from milcourts.model.simulate import Draws, simulate
from milcourts.model.spec import ModelSpec


FitRequest = tuple[pd.DataFrame, ModelSpec, bool]  # ledger rows, spec, whether draws are conditioned


def _code_version() -> str:
    return hashlib.sha256(f"{package_fingerprint()}|numpy {np.__version__}|scipy {scipy.__version__}|"
                          f"pandas {pd.__version__}".encode()).hexdigest()[:16]


def request_key(ledger: pd.DataFrame, spec: ModelSpec, condition: bool) -> str:
    """Hash of everything the fit and its draws depend on, except the code (see the directory)."""
    digest = hashlib.sha256()
    digest.update(repr(list(ledger.columns)).encode())
    digest.update(pd.util.hash_pandas_object(ledger, index=False).to_numpy().tobytes())
    digest.update(repr(spec).encode())
    digest.update(b"conditioned" if condition else b"unconditioned")
    return digest.hexdigest()


def _compute(ledger: pd.DataFrame, spec: ModelSpec, condition: bool) -> tuple[FittedModel, Draws]:
    fitted = fit_filings_model(build_constraint_view(ledger), spec)
    return fitted, simulate(fitted, condition=condition)


VERSION_PREFIX = "milcourts-fits-"
MARKER_FILE = ".milcourts-fit-cache"
MARKER_TEXT = "Fits cached by milcourts. The build deletes this folder when the code changes.\n"


def _is_ours(folder: Path) -> bool:
    """A version folder we made: our name, a real directory (not a link), with our marker inside."""
    if not folder.name.startswith(VERSION_PREFIX) or folder.is_symlink() or not folder.is_dir():
        return False
    marker = folder / MARKER_FILE
    try:
        return not marker.is_symlink() and marker.read_text(encoding="utf-8") == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _directory() -> Path:
    """This code version's folder; our folders of other versions can never be read again, so they
    go. Nothing else in the cache directory is touched."""
    root = paths.fit_cache_dir()
    directory = root / f"{VERSION_PREFIX}{_code_version()}"
    if not _is_ours(directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER_FILE).write_text(MARKER_TEXT, encoding="utf-8")
        for stale in root.iterdir():
            if stale != directory and _is_ours(stale):
                shutil.rmtree(stale, ignore_errors=True)
    return directory


@contextlib.contextmanager
def _lock(path: Path, blocking: bool):
    """Yield True if this process holds the exclusive lock on `path`, False if another does."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_or_compute(directory: Path, key: str, request: FitRequest) -> tuple[FittedModel, Draws]:
    ledger, spec, _ = request
    expected = {"key": key, "code_version": _code_version()}
    result = read_entry(directory / key, ledger, spec, expected)
    if result is None:
        result = _compute(*request)
        write_entry(directory / key, *result, meta=expected)
    return result


def fit_and_simulate_all(requests: list[FitRequest]) -> list[tuple[FittedModel, Draws]]:
    """The fit and draws of each request, from the cache or computed (and then stored)."""
    if paths.fit_cache_dir() is None:
        return [_compute(*request) for request in requests]
    directory = _directory()
    keys = [request_key(*request) for request in requests]
    results: dict[int, tuple[FittedModel, Draws]] = {}
    pending = list(range(len(requests)))
    while pending:
        for index in list(pending):  # every fit of ours that no other process holds
            with _lock(directory / f"{keys[index]}.lock", blocking=False) as held:
                if not held:
                    continue
                results[index] = _read_or_compute(directory, keys[index], requests[index])
            pending.remove(index)
        if pending:  # the rest are being computed elsewhere: wait for the first holder
            with _lock(directory / f"{keys[pending[0]]}.lock", blocking=True):
                pass
    return [results[index] for index in range(len(requests))]


def fit_and_simulate(ledger: pd.DataFrame, spec: ModelSpec = ModelSpec(),
                     condition: bool = True) -> tuple[FittedModel, Draws]:
    return fit_and_simulate_all([(ledger, spec, condition)])[0]
