"""A fitted model and its draws on disk, in formats that cannot execute code when read back.

A fit is stored as numbers only: `arrays.npz` (numpy arrays, read with allow_pickle=False, so an
object array planted in it is refused rather than unpickled) and `meta.json` (the spec, scalars,
the model-selection table and the sha256 of the arrays file). Everything else a FittedModel holds
(the figures, their month weights, the conflicts) is a cheap, deterministic function of the ledger
rows and is rebuilt from them, so nothing but numbers ever has to be trusted from disk.

Reading verifies before it parses: the arrays are hashed and compared with meta.json, then parsed
from the verified bytes, and every array's shape is checked against the spec. A truncated, edited
or foreign entry therefore reads as "absent" (None) and is recomputed; it is never half-used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from milcourts.inputs.constraints import build_constraint_view
from milcourts.model.fit import FittedModel
from milcourts.model.observations import prepare_observations
from milcourts.model.simulate import Draws
from milcourts.model.spec import ModelSpec, ParameterLayout

log = logging.getLogger(__name__)

FORMAT = "milcourts-fit/1"
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
_REQUIRED_ARRAYS = ("params", "cov", "knots", "months", "mu", "counts", "counterfactual", "coef", "alpha", "tau")
_OPTIONAL_ARRAYS = ("hess_lik", "base_rho", "base_sigma")


def spec_record(spec: ModelSpec) -> dict:
    """The spec as plain JSON values (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def _arrays(fitted: FittedModel, draws: Draws) -> dict[str, np.ndarray]:
    arrays = {
        "params": fitted.params, "cov": fitted.cov, "knots": np.asarray(fitted.knots, dtype=np.int64),
        "months": np.asarray(draws.months.astype(str), dtype="U7"), "mu": draws.mu, "counts": draws.counts,
        "counterfactual": draws.counterfactual, "coef": draws.coef, "alpha": draws.alpha, "tau": draws.tau,
        "hess_lik": fitted.hess_lik, "base_rho": draws.base_rho, "base_sigma": draws.base_sigma,
    }
    return {name: np.asarray(value) for name, value in arrays.items() if value is not None}


def _encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_entry(directory: Path, fitted: FittedModel, draws: Draws, meta: dict) -> None:
    """Write the entry into a private temporary sibling and rename it into place: a reader sees
    the whole entry or none. An existing entry at `directory` (stale or damaged) is replaced."""
    data = _encode_arrays(_arrays(fitted, draws))
    record = {
        **meta, "format": FORMAT, "spec": spec_record(fitted.spec),
        "penalty": float(fitted.penalty), "penalised_loglik": float(fitted.penalised_loglik),
        "n_observed": int(draws.n_observed), "is_conditioned": bool(draws.is_conditioned),
        "selection": {column: fitted.selection[column].tolist() for column in fitted.selection.columns},
        "files": {ARRAYS_FILE: hashlib.sha256(data).hexdigest()},
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (temporary / ARRAYS_FILE).write_bytes(data)
        (temporary / META_FILE).write_text(json.dumps(record, indent=1, allow_nan=True) + "\n", encoding="utf-8")
        for path in temporary.iterdir():
            path.chmod(0o644)
        temporary.chmod(0o755)
        if directory.is_symlink() or directory.is_file():
            directory.unlink()
        elif directory.exists():
            shutil.rmtree(directory)
        os.rename(temporary, directory)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


class _Unusable(ValueError):
    """The entry is absent, damaged, foreign or inconsistent: recompute it."""


def read_meta(directory: Path) -> dict:
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Unusable(f"{META_FILE}: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Unusable(f"{META_FILE}: not a {FORMAT} record")
    return meta


def _verified_arrays(directory: Path, meta: dict) -> dict[str, np.ndarray]:
    expected = (meta.get("files") or {}).get(ARRAYS_FILE)
    try:
        data = (directory / ARRAYS_FILE).read_bytes()
    except OSError as error:
        raise _Unusable(f"{ARRAYS_FILE}: {error}") from error
    if not isinstance(expected, str) or hashlib.sha256(data).hexdigest() != expected:
        raise _Unusable(f"{ARRAYS_FILE}: checksum differs from {META_FILE}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:  # object arrays refused here
        raise _Unusable(f"{ARRAYS_FILE}: {error}") from error
    missing = [name for name in _REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise _Unusable(f"{ARRAYS_FILE}: missing {', '.join(missing)}")
    if any(array.dtype.kind not in "fiubU" for array in arrays.values()):
        raise _Unusable(f"{ARRAYS_FILE}: unexpected array type")
    return arrays


def _check_shapes(arrays: dict[str, np.ndarray], fitted_names: list[str], n_draws: int,
                  n_months: int, n_coef: int) -> None:
    n_params = len(fitted_names)
    shapes = {"params": (n_params,), "cov": (n_params, n_params), "months": (n_months,),
              "mu": (n_draws, 3, n_months), "counts": (n_draws, 3, n_months),
              "counterfactual": (n_draws, 3, n_months), "coef": (n_draws, 3, n_coef),
              "alpha": (n_draws,), "tau": (n_draws,), "hess_lik": (n_params, n_params),
              "base_rho": (n_draws, 3), "base_sigma": (n_draws, 3)}
    for name, shape in shapes.items():
        if name in arrays and arrays[name].shape != shape:
            raise _Unusable(f"{ARRAYS_FILE}: {name} has shape {arrays[name].shape}, expected {shape}")


def read_entry(directory: Path, ledger: pd.DataFrame, spec: ModelSpec,
               expected: dict | None = None) -> tuple[FittedModel, Draws] | None:
    """The fit stored at `directory` for these ledger rows and spec, or None if it is not usable.

    `expected` holds meta.json fields that must match exactly (the request key, the code version);
    anything else (absent, damaged, other spec or shape) is None, logged at INFO only: a report
    kernel must print nothing when it recovers by refitting.
    """
    try:
        return _read(directory, ledger, spec, expected or {})
    except _Unusable as why:
        log.info("fit entry %s not used (%s); refitting", directory.name, why)
        return None


def _read(directory: Path, ledger: pd.DataFrame, spec: ModelSpec, expected: dict) -> tuple[FittedModel, Draws]:
    meta = read_meta(directory)
    for field, value in expected.items():
        if meta.get(field) != value:
            raise _Unusable(f"{META_FILE}: {field} is not the one asked for")
    if meta.get("spec") != spec_record(spec):
        raise _Unusable(f"{META_FILE}: another model specification")
    arrays = _verified_arrays(directory, meta)
    try:
        knots = tuple(int(k) for k in arrays["knots"])
        selection = pd.DataFrame(meta["selection"])
        penalty, loglik = float(meta["penalty"]), float(meta["penalised_loglik"])
        n_observed, is_conditioned = int(meta["n_observed"]), bool(meta["is_conditioned"])
    except (KeyError, TypeError, ValueError) as error:
        raise _Unusable(f"{META_FILE}: {error}") from error
    view = build_constraint_view(ledger)
    obs = prepare_observations(view, None, spec.exposure)
    months = pd.PeriodIndex(arrays["months"].tolist(), freq="M")
    names = ParameterLayout(len(knots)).names(knots)
    if n_observed != len(obs.months) or len(months) != n_observed + spec.forecast_months \
            or (len(obs.months) and months[0] != obs.months[0]):
        raise _Unusable("months do not match the ledger rows")
    _check_shapes(arrays, names, spec.n_draws, len(months), 3 + len(knots))
    fitted = FittedModel(spec=spec, obs=obs, params=arrays["params"], cov=arrays["cov"], penalty=penalty,
                         penalised_loglik=loglik, selection=selection, names=names, knots=knots,
                         conflicts=view.conflicts, hess_lik=arrays.get("hess_lik"))
    draws = Draws(months=months, mu=arrays["mu"], counts=arrays["counts"], counterfactual=arrays["counterfactual"],
                  coef=arrays["coef"], n_observed=n_observed, alpha=arrays["alpha"], tau=arrays["tau"],
                  is_conditioned=is_conditioned, base_rho=arrays.get("base_rho"),
                  base_sigma=arrays.get("base_sigma"))
    return fitted, draws
