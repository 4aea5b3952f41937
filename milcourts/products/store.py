"""A fit's products on disk, in formats that cannot execute code when read back.

One folder per fit: `arrays.npz` (the parameters, their covariance and the draws; numpy's own
binary format, read with allow_pickle=False so an object array planted in it is refused rather
than unpickled), the fit's tables as CSV (monthly estimates, effects, fit to each figure, model
selection; for the main fit also the break profile and the other estimators), and `meta.json`:
the request, the spec, the code version, the seed, when it was made and the sha256 of every
other file. npz rather than a columnar table format: the draws are dense arrays (draws x
articles x months), and numpy reads them with no further dependency.

Everything else a FittedModel holds (the figures, their month weights, the conflicts) is a cheap,
deterministic function of the ledger rows and is rebuilt from them, so nothing but numbers and
text is ever trusted from disk. Reading verifies before it parses: each file is hashed and
compared with meta.json, then parsed from the verified bytes, and every array's shape is checked
against the spec. A truncated, edited or foreign entry reads as absent (None) and is refitted;
it is never half-used.
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

FORMAT = "milcourts-fit/2"
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
_REQUIRED_ARRAYS = ("params", "cov", "knots", "months", "mu", "counts", "counterfactual", "coef", "alpha", "tau")
# Columns of the tables that hold text (codes, months, dates, sentences): read back as text, never
# guessed as numbers (an article code "337" is not the number 337); empty cells read as "".
TEXT_COLUMNS = (
    "article",
    "month",
    "effect",
    "method",
    "figure_id",
    "measure",
    "period_start",
    "period_end",
    "value_qualifier",
    "source_date",
    "usage",
    "reason",
    "later_figure_id",
    "conflicts",
    "break_month",
    "estimator",
)


class Unusable(ValueError):
    """The entry is absent, damaged, foreign or inconsistent: refit it."""


def spec_record(spec: ModelSpec) -> dict:
    """The spec as plain JSON values (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))


def encode_table(frame: pd.DataFrame) -> bytes:
    """A table as CSV at full precision (floats round-trip exactly)."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def decode_table(data: bytes) -> pd.DataFrame:
    """The inverse of encode_table, with text columns kept as text (read once: pandas passes over
    the text columns a table does not have)."""
    frame = pd.read_csv(io.BytesIO(data), dtype=dict.fromkeys(TEXT_COLUMNS, str))
    for column in frame.columns.intersection(TEXT_COLUMNS):
        frame[column] = frame[column].fillna("")
    return frame


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _arrays(fitted: FittedModel, draws: Draws) -> dict[str, np.ndarray]:
    arrays = {
        "params": fitted.params,
        "cov": fitted.cov,
        "knots": np.asarray(fitted.knots, dtype=np.int64),
        "months": np.asarray(draws.months.astype(str), dtype="U7"),
        "mu": draws.mu,
        "counts": draws.counts,
        "counterfactual": draws.counterfactual,
        "coef": draws.coef,
        "alpha": draws.alpha,
        "tau": draws.tau,
        "hess_lik": fitted.hess_lik,
        "base_rho": draws.base_rho,
        "base_sigma": draws.base_sigma,
    }
    return {name: np.asarray(value) for name, value in arrays.items() if value is not None}


def write_entry(
    directory: Path, fitted: FittedModel, draws: Draws, tables: dict[str, pd.DataFrame], meta: dict
) -> None:
    """Write the entry into a private temporary sibling and rename it into place: a reader sees
    the whole entry or none. An existing entry at `directory` (stale or damaged) is replaced."""
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays(fitted, draws))
    files = {ARRAYS_FILE: buffer.getvalue()}
    files.update({f"{name}.csv": encode_table(table) for name, table in tables.items()})
    record = {
        **meta,
        "format": FORMAT,
        "spec": spec_record(fitted.spec),
        "seed": fitted.spec.seed,
        "penalty": float(fitted.penalty),
        "penalised_loglik": float(fitted.penalised_loglik),
        "n_observed": int(draws.n_observed),
        "is_conditioned": bool(draws.is_conditioned),
        "selection": {column: fitted.selection[column].tolist() for column in fitted.selection.columns},
        "tables": sorted(tables),
        "files": {name: sha256_bytes(data) for name, data in files.items()},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        (temporary / META_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
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


def read_meta(directory: Path) -> dict:
    """meta.json of an entry; Unusable if it is not one of ours."""
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Unusable(f"{META_FILE}: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("files"), dict):
        raise Unusable(f"{META_FILE}: not a {FORMAT} record")
    return meta


def _verified(directory: Path, meta: dict, name: str) -> bytes:
    expected = meta["files"].get(name)
    try:
        data = (directory / name).read_bytes()
    except OSError as error:
        raise Unusable(f"{name}: {error}") from error
    if not isinstance(expected, str) or sha256_bytes(data) != expected:
        raise Unusable(f"{name}: checksum differs from {META_FILE}")
    return data


def _verified_arrays(directory: Path, meta: dict) -> dict[str, np.ndarray]:
    data = _verified(directory, meta, ARRAYS_FILE)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:  # object arrays refused here
        raise Unusable(f"{ARRAYS_FILE}: {error}") from error
    missing = [name for name in _REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise Unusable(f"{ARRAYS_FILE}: missing {', '.join(missing)}")
    if any(array.dtype.kind not in "fiubU" for array in arrays.values()):
        raise Unusable(f"{ARRAYS_FILE}: unexpected array type")
    return arrays


def _check_shapes(arrays: dict[str, np.ndarray], n_params: int, n_draws: int, n_months: int, n_coef: int) -> None:
    shapes = {
        "params": (n_params,),
        "cov": (n_params, n_params),
        "months": (n_months,),
        "mu": (n_draws, 3, n_months),
        "counts": (n_draws, 3, n_months),
        "counterfactual": (n_draws, 3, n_months),
        "coef": (n_draws, 3, n_coef),
        "alpha": (n_draws,),
        "tau": (n_draws,),
        "hess_lik": (n_params, n_params),
        "base_rho": (n_draws, 3),
        "base_sigma": (n_draws, 3),
    }
    for name, shape in shapes.items():
        if name in arrays and arrays[name].shape != shape:
            raise Unusable(f"{ARRAYS_FILE}: {name} has shape {arrays[name].shape}, expected {shape}")


def read_entry(
    directory: Path, ledger: pd.DataFrame, spec: ModelSpec, expected: dict | None = None
) -> tuple[FittedModel, Draws, dict[str, pd.DataFrame]] | None:
    """The fit stored at `directory` for these ledger rows and spec, with its tables; None if it is
    not usable.

    `expected` holds meta.json fields that must match exactly (the request key, the code version);
    anything else (absent, damaged, other spec or shape) is None, logged at INFO only: a report
    kernel must print nothing when it recovers by refitting.
    """
    try:
        return _read(directory, ledger, spec, expected or {})
    except Unusable as why:
        log.info("fit entry %s not used (%s)", directory.name, why)
        return None


# The constraint views and observations of the ledgers read in this process, by the rows' content
# (and the exposure): a report loads up to eight fits of the same rows (the main fit and its
# sensitivity variants), and rebuilding the view each time (0.17 s, most of it the conflict
# search) was half of a trend report's loading. Never changed after they are built.
_VIEWS: dict[bytes, object] = {}
_OBSERVATIONS: dict[tuple[bytes, str], object] = {}
_KEPT = 4


def _remember(memo: dict, key, make):
    if key not in memo:
        if len(memo) >= _KEPT:
            memo.pop(next(iter(memo)))
        memo[key] = make()
    return memo[key]


def _view_and_observations(ledger: pd.DataFrame, exposure: str):
    rows = pd.util.hash_pandas_object(ledger, index=True).to_numpy().tobytes()
    key = hashlib.sha256(rows + repr(list(ledger.columns)).encode()).digest()
    view = _remember(_VIEWS, key, lambda: build_constraint_view(ledger))
    return view, _remember(_OBSERVATIONS, (key, exposure), lambda: prepare_observations(view, None, exposure))


def _read(directory: Path, ledger: pd.DataFrame, spec: ModelSpec, expected: dict):
    meta = read_meta(directory)
    for field, value in expected.items():
        if meta.get(field) != value:
            raise Unusable(f"{META_FILE}: {field} is not the one asked for")
    if meta.get("spec") != spec_record(spec):
        raise Unusable(f"{META_FILE}: another model specification")
    arrays = _verified_arrays(directory, meta)
    try:
        tables = {name: decode_table(_verified(directory, meta, f"{name}.csv")) for name in meta["tables"]}
        knots = tuple(int(k) for k in arrays["knots"])
        selection = pd.DataFrame(meta["selection"])
        penalty, loglik = float(meta["penalty"]), float(meta["penalised_loglik"])
        n_observed, is_conditioned = int(meta["n_observed"]), bool(meta["is_conditioned"])
    except (KeyError, TypeError, ValueError, pd.errors.ParserError) as error:
        raise Unusable(f"{META_FILE}: {error}") from error
    view, obs = _view_and_observations(ledger, spec.exposure)
    months = pd.PeriodIndex(arrays["months"].tolist(), freq="M")
    layout = ParameterLayout(len(knots))
    if (
        n_observed != len(obs.months)
        or len(months) != n_observed + spec.forecast_months
        or (len(obs.months) and months[0] != obs.months[0])
    ):
        raise Unusable("months do not match the ledger rows")
    _check_shapes(arrays, layout.size, spec.n_draws, len(months), 3 + len(knots))
    fitted = FittedModel(
        spec=spec,
        obs=obs,
        params=arrays["params"],
        cov=arrays["cov"],
        penalty=penalty,
        penalised_loglik=loglik,
        selection=selection,
        names=layout.names(knots),
        knots=knots,
        conflicts=view.conflicts,
        hess_lik=arrays.get("hess_lik"),
    )
    draws = Draws(
        months=months,
        mu=arrays["mu"],
        counts=arrays["counts"],
        counterfactual=arrays["counterfactual"],
        coef=arrays["coef"],
        n_observed=n_observed,
        alpha=arrays["alpha"],
        tau=arrays["tau"],
        is_conditioned=is_conditioned,
        base_rho=arrays.get("base_rho"),
        base_sigma=arrays.get("base_sigma"),
    )
    return fitted, draws, tables
