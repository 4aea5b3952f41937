"""The fit stage: each model specification the reports need, fitted once and stored as products.

The build collects every run's requests (products.needs) before any notebook starts and calls
`fit_stage`: requests already stored for this code version are verified and kept, the others are
fitted (in parallel with `--jobs`) and written to `data/processed/fits/<name>-<key>/`. The main
fit (every figure of the project's ledger, default spec) also gets the model's checks (break-date
profile, other estimators) and its tables are copied to `data/processed/` itself, where an analyst
finds them.

Notebooks call `load_or_fit` with the same requests: products that match the ledger rows, the spec
and the code are loaded; otherwise (an analyst changed a parameter in JupyterLab, or ran plain
papermill) the fit runs in the kernel and says so in one line. Either way the tables have been
through the same CSV text, and every fit runs with one BLAS thread, so the numbers are the same.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import statsmodels

from milcourts import paths
from milcourts.checks.breakdate import (
    break_effect_rows,
    profile_break_month,
    ruptures_break_month,
)
from milcourts.checks.posterior import run_posterior_check, sample_posterior
from milcourts.inputs.constraints import build_constraint_view
from milcourts.inputs.provenance import code_fingerprint
from milcourts.model.fit import FittedModel, fit_filings_model
from milcourts.model.releases import release_completeness_table
from milcourts.model.runtime import model_numerics
from milcourts.model.simulate import Draws, simulate
from milcourts.model.tables import (
    effects_table,
    fit_to_ledger_table,
    monthly_filings_table,
    yearly_totals_table,
)
from milcourts.products import public
from milcourts.products.needs import FitRequest
from milcourts.products.store import (
    ARRAYS_FILE,
    Unusable,
    decode_table,
    encode_table,
    read_entry,
    read_meta,
    sha256_bytes,
    spec_record,
    write_entry,
)
from milcourts.vocabulary import COURT_FILINGS

FITS_FOLDER = "fits"
# Tables every fit stores; the main fit adds the checks. Names are the CSV files' stems.
FIT_TABLES = ("monthly_filings", "yearly_totals", "effects", "fit_to_ledger", "model_selection")
CHECK_TABLES = (
    "break_effects",
    "break_profile",
    "alternatives",
    "posterior_summary",
    "posterior_intervals",
    "posterior_parameters",
    "release_completeness",
)
# What a fit depends on: the model, its inputs and checks, this stage, the vocabulary (not the
# views or the build, whose edits must not refit anything).
FIT_CODE = ("inputs", "model", "checks", "products", "vocabulary.py", "atomic.py")


def code_version() -> str:
    """The fit code and the numerical libraries; products of another version are refitted."""
    libraries = (
        f"numpy {np.__version__}|scipy {scipy.__version__}|pandas {pd.__version__}|"
        f"statsmodels {statsmodels.__version__}"
    )
    return sha256_bytes(f"{code_fingerprint(FIT_CODE)}|{libraries}".encode())[:16]


@dataclass
class FitProducts:
    """One fit as the reports use it: the fitted model, its draws and its tables."""

    request: FitRequest
    fitted: FittedModel
    draws: Draws
    tables: dict[str, pd.DataFrame]


def fits_dir(processed_dir: Path | None = None) -> Path:
    return (processed_dir or paths.processed_dir()) / FITS_FOLDER


def _tables(
    request: FitRequest, fitted: FittedModel, draws: Draws, with_checks: bool, workers: int = 1
) -> dict[str, pd.DataFrame]:
    effects = effects_table(fitted, draws)
    monthly = monthly_filings_table(fitted, draws)
    tables = {
        "monthly_filings": monthly,
        "yearly_totals": yearly_totals_table(draws, monthly),
        "effects": effects,
        "fit_to_ledger": fit_to_ledger_table(fitted, draws),
        "model_selection": fitted.selection,
    }
    if with_checks:
        view = build_constraint_view(request.ledger)
        profile = profile_break_month(view, request.spec, fitted.penalty, warm_start=fitted)
        rows = break_effect_rows(profile, ruptures_break_month(draws), fitted)
        tables["break_effects"] = pd.DataFrame(
            rows, columns=["article", "effect", "estimate", "lower_95", "upper_95", "method"]
        )
        tables["break_profile"] = profile
        # imported here: statsmodels.api takes half a second to import, and every report kernel
        # imports this module only to load the stored fits
        from milcourts.checks.alternatives import comparison_table

        tables["alternatives"] = comparison_table(fitted, draws, effects)
        tables["release_completeness"] = release_completeness_table(fitted, draws)
        # the full-posterior check of the Laplace intervals (about a minute of sampling)
        check = run_posterior_check(fitted, draws, sample_posterior(fitted, workers=workers))
        tables.update({f"posterior_{name}": table for name, table in check.items()})
    return tables


def compute(request: FitRequest, with_checks: bool = False, workers: int = 1) -> FitProducts:
    """Fit, draw and tabulate one request (model_numerics: the same numbers in any process).
    `workers`: processes the full-posterior check's chains may share (the same draws either way)."""
    with model_numerics():
        fitted = fit_filings_model(build_constraint_view(request.ledger), request.spec)
        draws = simulate(fitted, condition=request.condition)
        tables = _tables(request, fitted, draws, with_checks, workers)
    # the tables as a reader of the products gets them: through the same CSV text
    tables = {name: decode_table(encode_table(table)) for name, table in tables.items()}
    return FitProducts(request, fitted, draws, tables)


def _expected_meta(request: FitRequest) -> dict:
    return {"key": request.key, "code_version": code_version()}


def store(products: FitProducts, processed_dir: Path | None = None) -> Path:
    request = products.request
    directory = fits_dir(processed_dir) / request.folder
    write_entry(
        directory,
        products.fitted,
        products.draws,
        products.tables,
        meta={
            **_expected_meta(request),
            "name": request.name,
            "description": request.description,
            "condition": request.condition,
            "ledger_rows": len(request.ledger),
        },
    )
    return directory


def load(request: FitRequest, processed_dir: Path | None = None) -> FitProducts | None:
    """The stored products of `request`, verified; None if absent, damaged or stale."""
    stored = read_entry(fits_dir(processed_dir) / request.folder, request.ledger, request.spec, _expected_meta(request))
    return None if stored is None else FitProducts(request, *stored)


def is_stored(request: FitRequest, processed_dir: Path | None = None, with_checks: bool = False) -> bool:
    """Whether intact products of `request` exist for this code version (every file's checksum
    verified; cheaper than loading, which also rebuilds the observations)."""
    directory = fits_dir(processed_dir) / request.folder
    try:
        meta = read_meta(directory)
    except Unusable:
        return False
    if any(meta.get(k) != v for k, v in _expected_meta(request).items()) or meta.get("spec") != spec_record(
        request.spec
    ):
        return False
    if with_checks and not set(CHECK_TABLES) <= set(meta.get("tables", [])):
        return False
    for name, digest in meta["files"].items():
        try:
            if sha256_bytes((directory / name).read_bytes()) != digest:
                return False
        except OSError:
            return False
    return ARRAYS_FILE in meta["files"]


def _fit_and_store(request: FitRequest, processed_dir: Path, with_checks: bool, workers: int = 1) -> float:
    started = time.perf_counter()
    store(compute(request, with_checks, workers), processed_dir)
    return time.perf_counter() - started


# Processes the main fit's posterior check shares its chains between (checks.posterior), at least.
CHECK_WORKERS = 2


def fit_stage(
    requests: list[FitRequest],
    processed_dir: Path | None = None,
    jobs: int = 1,
    main: FitRequest | None = None,
    say: Callable[[str], None] = print,
) -> list[FitRequest]:
    """Fit and store every distinct request not already stored; return those fitted.

    `main`, if given, is the project's main fit: it is fitted with the model's checks and its
    tables are copied to data/processed/.

    The fits run one at a time in this process, whatever `jobs`: each process compiles the
    likelihood's derivatives (about 9 s of processor time, 15 s with the posterior sampler) and
    the fits themselves take a second each, so fits in parallel processes took longer (the stage
    66.6 s with two processes against 40.2 s in one, `make bench`). The second core helps where
    the work is long: the main fit's posterior check shares its four chains with CHECK_WORKERS - 1
    other processes (or `jobs` - 1, if more), the same draws either way.
    """
    processed_dir = processed_dir or paths.processed_dir()
    distinct: dict[str, FitRequest] = {}
    for request in ([main] if main else []) + list(requests):
        distinct.setdefault(request.key, request)
    checks = {request.key for request in distinct_with_checks(requests)} | ({main.key} if main else set())
    todo = []
    for key, request in distinct.items():
        if is_stored(request, processed_dir, key in checks):
            say(f"fit {request.folder}: stored for this code, not refitted")
        else:
            todo.append(request)
    # the main fit first: it is the longest (its checks refit the model at every candidate break)
    todo.sort(key=lambda r: r.key not in checks)
    for request in todo:
        seconds = _fit_and_store(request, processed_dir, request.key in checks, max(jobs, CHECK_WORKERS))
        say(f"fit {request.folder}: {request.description} ({seconds:.1f} s)")
    if main:
        publish_main_tables(main, processed_dir)
    _prune(processed_dir, {request.folder for request in distinct.values()})
    return todo


def distinct_with_checks(requests: list[FitRequest]) -> list[FitRequest]:
    return [request for request in requests if request.with_checks]


def publish_main_tables(main: FitRequest, processed_dir: Path | None = None) -> list[Path]:
    """The main fit's public tables and their datapackage.json in data/processed/ (renamed into
    place together, never half-written): the files an analyst opens. effects.csv there holds the
    break-date rows too."""
    processed_dir = processed_dir or paths.processed_dir()
    products = load(main, processed_dir)
    if products is None:
        raise RuntimeError(f"the main fit's products in {fits_dir(processed_dir) / main.folder} are not readable")
    tables = dict(products.tables)
    tables["effects"] = pd.concat([tables["effects"], tables.pop("break_effects")], ignore_index=True)
    return public.write_data_package(
        processed_dir,
        "milcourts-main-fit",
        "Cases of refusing to fight in Russia's military courts: the main fit",
        "The composite-link model fitted to every published court-filing figure of the project's ledger: monthly "
        "and yearly cases with prediction intervals, the effects of the mobilisation break, the fit to each "
        "published figure, and the model's checks.",
        [(table, public.public_frame(table, tables)) for table in public.MAIN_TABLES],
        public.sources_of(main.ledger[main.ledger["series"] == COURT_FILINGS]),
    )


def _prune(processed_dir: Path, keep: set[str]) -> None:  # keep: folder names
    """Remove stored fits of another code version that this stage did not ask for: only folders
    that hold a meta.json of ours, never anything else in data/processed/fits."""
    root = fits_dir(processed_dir)
    if not root.is_dir():
        return
    version = code_version()
    for folder in root.iterdir():
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            meta = read_meta(folder)
        except Unusable:
            continue
        if meta.get("code_version") != version and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


# Products loaded or fitted in this process, so that re-running a notebook cell in JupyterLab
# neither rereads nor refits; keyed by request key and code version.
_SESSION: dict[tuple[str, str], FitProducts] = {}


def _stdout(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


def load_or_fit(
    requests: list[FitRequest], processed_dir: Path | None = None, say: Callable[[str], None] = _stdout
) -> list[FitProducts]:
    """The products of each request: stored ones if they match, otherwise fitted here (one line
    says so). The one function a notebook calls for its fits."""
    version = code_version()
    found = []
    for request in requests:
        products = _SESSION.get((request.key, version)) or load(request, processed_dir)
        if products is not None and request.with_checks and not set(CHECK_TABLES) <= set(products.tables):
            products = None  # stored without the checks this request wants
        if products is None:
            say(
                f"Fitting the model here: no stored fit matches {request.description} "
                "(the build and `make model` store the fits the reports in reports.yaml need)."
            )
            products = compute(request, request.with_checks)
        _SESSION[(request.key, version)] = products
        found.append(products)
    return found
