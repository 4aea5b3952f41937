"""Fits shared between reports, computed once per build.

Every trend run and the summary fit the same joint model to the same ledger (the model is always
joint; a report only looks at one article), and each trend run refits the same sensitivity
variants. Without sharing, a cold build repeats identical 10-second fits a dozen times. A fit and
its draws are a deterministic function of the ledger rows, the spec (seed included), the package
source and the numerical libraries, so they are stored under a hash of exactly those and reused.

Parallel runs (`build --jobs N`) share the work instead of duplicating it: a fit being computed by
another process is skipped for the moment (an exclusive lock per key), the caller does other
pending fits, and comes back to wait for that one at the end. Before it waits, it helps: every
caller posts the fits it still needs under `wanted/`, and a caller left with nothing but fits
held elsewhere computes one that another process wants and nobody has started. Without this, a
report whose fits were all being computed by another run sat idle for seconds, on each of the
two cores in turn (measured with `--jobs 2`: about 6 s of a 42 s build).
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


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _post_wanted(directory: Path, key: str, request: FitRequest) -> None:
    """Say this process needs `key`, unless the fit is stored or a live process already said so."""
    wanted = directory / "wanted" / f"{key}.pkl"
    if (directory / f"{key}.pkl").exists():
        return
    if wanted.exists():
        posted = _load(wanted)
        if posted is not None and _is_running(posted[0]):
            return
    wanted.parent.mkdir(exist_ok=True)
    _store(wanted, (os.getpid(), request))


def _compute_one_wanted(directory: Path) -> bool:
    """Compute and store one fit that a live process has posted and nobody is computing.

    False when there is none: the caller then waits. Posts of processes that died (an interrupted
    build) are dropped, never computed. A fit that fails here is dropped too: its owner computes
    it and meets the error itself, in its own report, rather than failing this one.
    """
    for wanted in sorted((directory / "wanted").glob("*.pkl")):
        key = wanted.stem
        with _lock(directory / f"{key}.lock", blocking=False) as held:
            if not held:
                continue  # being computed
            posted = _load(wanted)
            if (directory / f"{key}.pkl").exists() or posted is None or not _is_running(posted[0]) \
                    or request_key(*posted[1]) != key:
                wanted.unlink(missing_ok=True)
                continue
            try:
                result = _compute(*posted[1])
            except Exception:  # noqa: BLE001 - see the docstring: the owner will raise it
                wanted.unlink(missing_ok=True)
                continue
            _store(directory / f"{key}.pkl", result)
            wanted.unlink(missing_ok=True)
            return True
    return False


def _withdraw_wanted(directory: Path, keys: list[str]) -> None:
    """Take back this process's posts for fits it no longer waits for (it stopped early)."""
    for key in keys:
        wanted = directory / "wanted" / f"{key}.pkl"
        posted = _load(wanted)
        if posted is not None and posted[0] == os.getpid():
            wanted.unlink(missing_ok=True)


def fit_and_simulate_all(requests: list[FitRequest]) -> list[tuple[FittedModel, Draws]]:
    """The fit and draws of each request, from the cache or computed (and then stored)."""
    if paths.fit_cache_dir() is None:
        return [_compute(*request) for request in requests]
    directory = _directory()
    keys = [request_key(*request) for request in requests]
    for key, request in zip(keys, requests):
        _post_wanted(directory, key, request)
    results: dict[int, tuple[FittedModel, Draws]] = {}
    pending = list(range(len(requests)))
    try:
        _share_work(directory, requests, keys, pending, results)
    finally:
        _withdraw_wanted(directory, [keys[index] for index in pending])
    return [results[index] for index in range(len(requests))]


def _share_work(directory: Path, requests: list[FitRequest], keys: list[str], pending: list[int],
                results: dict) -> None:
    """Fill `results` for the `pending` indexes; both change in place, so that the caller knows
    what is left if this stops early (an error or an interruption)."""
    while pending:
        for index in list(pending):  # every fit of ours that no other process holds
            with _lock(directory / f"{keys[index]}.lock", blocking=False) as held:
                if not held:
                    continue
                result = _load(directory / f"{keys[index]}.pkl")
                if result is None:
                    result = _compute(*requests[index])
                    _store(directory / f"{keys[index]}.pkl", result)
            (directory / "wanted" / f"{keys[index]}.pkl").unlink(missing_ok=True)
            results[index] = result
            pending.remove(index)
        # what is left is being computed elsewhere: help with fits others want, and only when
        # there are none wait for the holder of the first (its lock is free once it is stored)
        if pending and not _compute_one_wanted(directory):
            with _lock(directory / f"{keys[pending[0]]}.lock", blocking=True):
                pass


def fit_and_simulate(ledger: pd.DataFrame, spec: ModelSpec = ModelSpec(),
                     condition: bool = True) -> tuple[FittedModel, Draws]:
    return fit_and_simulate_all([(ledger, spec, condition)])[0]
