"""Fits shared between reports, computed once per build.

Every trend run and the summary fit the same joint model to the same ledger (the model is always
joint; a report only looks at one article), and each trend run refits the same sensitivity
variants. Without sharing, a cold build repeats identical 10-second fits a dozen times. A fit and
its draws are a deterministic function of the ledger rows, the spec (seed included), the package
source and the numerical libraries, so they are stored under a hash of exactly those and reused.

Parallel runs (`build --jobs N`) share the work instead of duplicating it: a fit being computed by
another process is skipped for the moment (an exclusive lock per key), the caller does other
pending fits, and comes back to wait for that one at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from milcourts import paths
from milcourts.atomic import temporary_sibling
from milcourts.constraints import build_constraint_view
from milcourts.incremental import package_fingerprint
from milcourts.model import Draws, FittedModel, ModelSpec, fit_filings_model, simulate

log = logging.getLogger(__name__)

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


def _load(path: Path) -> tuple[FittedModel, Draws] | None:
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except Exception as error:  # a damaged entry is recomputed, never trusted
        log.warning("fit cache entry %s unreadable (%s); refitting", path.name, error)
        return None


def _store(path: Path, result: tuple[FittedModel, Draws]) -> None:
    temporary = temporary_sibling(path)
    with temporary.open("wb") as handle:
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, path)


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


def _directory() -> Path:
    """This code version's entries; entries of other versions can never be read again, so they go."""
    root = paths.fit_cache_dir()
    directory = root / _code_version()
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        for stale in root.iterdir():
            if stale.is_dir() and stale != directory:
                shutil.rmtree(stale, ignore_errors=True)
    return directory


def fit_and_simulate_all(requests: list[FitRequest]) -> list[tuple[FittedModel, Draws]]:
    """The fit and draws of each request, from the cache or computed (and then stored)."""
    if paths.fit_cache_dir() is None:
        return [_compute(*request) for request in requests]
    directory = _directory()
    keys = [request_key(*request) for request in requests]
    results: dict[int, tuple[FittedModel, Draws]] = {}
    pending = list(range(len(requests)))
    blocking = False  # first pass: skip fits another process holds; later passes wait for them
    while pending:
        for index in list(pending):
            entry = directory / f"{keys[index]}.pkl"
            with _lock(directory / f"{keys[index]}.lock", blocking) as held:
                if not held:
                    continue
                result = _load(entry)
                if result is None:
                    result = _compute(*requests[index])
                    _store(entry, result)
            results[index] = result
            pending.remove(index)
        blocking = True
    return [results[index] for index in range(len(requests))]


def fit_and_simulate(ledger: pd.DataFrame, spec: ModelSpec = ModelSpec(),
                     condition: bool = True) -> tuple[FittedModel, Draws]:
    return fit_and_simulate_all([(ledger, spec, condition)])[0]
