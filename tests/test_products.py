"""The fit stage and its products: each specification fitted once, stored in formats that cannot
execute code, verified before use, refitted when damaged or stale, and the same numbers whether a
notebook loads them or fits them itself."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from milcourts import paths
from milcourts.build.incremental import BuildSettings, run_parameters
from milcourts.build.runfile import load_runs
from milcourts.checks.posterior import compare_intervals
from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts
from milcourts.inputs.ledger import load_ledger
from milcourts.model.releases import release_completeness_table
from milcourts.model.spec import ModelSpec
from milcourts.products import public, stage
from milcourts.products.needs import FitRequest, main_request, requests_for_run, summary_requests, trend_requests

TINY = ModelSpec(penalty_grid=(1.0,), n_draws=50)


_QUANTITY = pd.DataFrame(
    {
        "kind": ["effect"],
        "article": ["337"],
        "quantity": ["level rate ratio at the break"],
        "estimate": [2.0],
        "lower_95": [1.0],
        "upper_95": [3.0],
        "is_estimable": [True],
    }
)


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    truth = default_truth()
    return publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern())


@pytest.fixture(scope="module")
def tiny(ledger) -> stage.FitProducts:
    """One real fit (about 3 s), computed once for the module."""
    return stage.compute(FitRequest("main", "the tiny test fit", ledger, TINY))


class _Calls(list):
    """The names of the requests fitted, in order; `.workers`: the processes each fit was offered."""


@pytest.fixture
def counted(monkeypatch, tiny):
    """The stage's fit replaced by a recorder returning the real tiny fit under the request asked
    for (with stand-in check tables for the main fit)."""
    calls, workers_asked = _Calls(), []

    def compute(request, with_checks=False, workers=1):
        calls.append(request.name)
        workers_asked.append(workers)
        tables = dict(tiny.tables)
        if with_checks:
            tables.update(
                break_effects=tiny.tables["effects"].iloc[:1],
                break_profile=pd.DataFrame(
                    {
                        "break_month": ["2022-10"],
                        "penalised_loglik": [-1.0],
                        "converged": [True],
                        "drop_from_best": [0.0],
                        "is_in_95_interval": [True],
                    }
                ),
                alternatives=pd.DataFrame(
                    {
                        "estimator": ["x"],
                        "article": ["337"],
                        "effect": ["level rate ratio"],
                        "estimate": [2.0],
                        "lower_95": [1.0],
                        "upper_95": [3.0],
                        "method": ["m"],
                    }
                ),
                posterior_summary=pd.DataFrame({"chains": [4], "is_converged": [True]}),
                posterior_intervals=compare_intervals(*[_QUANTITY] * 2),
                posterior_parameters=pd.DataFrame({"parameter": ["337:step"], "sd_ratio": [1.0]}),
                release_completeness=release_completeness_table(tiny.fitted, tiny.draws),
            )
        fitted = dataclasses.replace(tiny.fitted, spec=request.spec)
        draws = dataclasses.replace(tiny.draws, is_conditioned=request.condition)
        return stage.FitProducts(request, fitted, draws, tables)

    monkeypatch.setattr(stage, "compute", compute)
    monkeypatch.setattr(stage, "_SESSION", {})
    calls.workers = workers_asked
    return calls


def request(ledger, name="main", spec=TINY, **changes) -> FitRequest:
    return FitRequest(name, f"the {name} test fit", ledger, dataclasses.replace(spec, **changes))


def assert_same(a: stage.FitProducts, b: stage.FitProducts) -> None:
    for name in ("params", "cov"):
        np.testing.assert_array_equal(getattr(a.fitted, name), getattr(b.fitted, name))
    for name in ("mu", "counts", "counterfactual", "coef", "alpha", "tau", "base_rho", "base_sigma"):
        np.testing.assert_array_equal(getattr(a.draws, name), getattr(b.draws, name))
    assert a.draws.months.equals(b.draws.months)
    assert a.fitted.obs.figures.equals(b.fitted.obs.figures)
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])


# ----------------------------------------------------------------------------- the stage


def test_each_distinct_request_is_fitted_once_and_stored_ones_are_kept(counted, ledger, tmp_path):
    first, again, other = request(ledger), request(ledger), request(ledger, "other", break_month="2022-11")
    fitted = stage.fit_stage([first, again, other], tmp_path, say=lambda line: None)
    assert counted == ["main", "other"] and len(fitted) == 2
    said = []
    assert stage.fit_stage([first, other], tmp_path, say=said.append) == []
    assert counted == ["main", "other"]
    assert all("stored for this code, not refitted" in line for line in said)


@pytest.mark.parametrize("jobs", [1, 3])
def test_fits_run_one_at_a_time_here_and_only_the_posterior_check_shares_processes(counted, ledger, tmp_path, jobs):
    """Parallel fits lost to compiling the likelihood once per process; with any --jobs the stage
    fits here, in order, and offers the main fit's check at least two processes (--jobs if more)."""
    main = request(ledger)
    others = [request(ledger, "other", break_month="2022-11"), request(ledger, "poisson", likelihood="poisson")]
    stage.fit_stage(others, tmp_path, jobs=jobs, main=main, say=lambda line: None)
    assert counted == ["main", "other", "poisson"]  # recorded in this process, the main fit first
    assert counted.workers[0] == max(jobs, 2)


def test_the_reports_need_eight_fits_and_the_stage_fits_each_once(counted, tmp_path):
    """The three trend runs and the summary share the main fit and the sensitivity refits."""
    ledger = load_ledger(paths.LEDGER_CSV)
    requests = [r for run in load_runs() for r in requests_for_run(run.notebook, run_parameters(run), ledger)]
    distinct = {r.key for r in requests}
    assert len(requests) == 3 * 7 + 2 + 1 and len(distinct) == 8  # trend runs, the summary, the methods report
    stage.fit_stage(requests, tmp_path, say=lambda line: None)
    assert len(counted) == 8 and len(set(counted)) == 8


def test_the_same_parameters_give_the_same_requests_in_the_build_and_in_a_notebook(ledger):
    """papermill's `-p article 338` and `-p forecast_months 6` arrive as ints: same keys."""
    from_build = trend_requests(ledger, break_month="2022-10", train_end="", forecast_months=6)
    from_papermill = trend_requests(
        ledger, break_month="2022-10", train_end="", forecast_months=6, article=338, ledger_csv="x"
    )
    assert [r.key for r in from_build] == [r.key for r in from_papermill]
    assert summary_requests(ledger)[0].key == from_build[0].key == main_request(ledger).key


def test_the_main_fit_gets_its_checks_and_its_tables_in_data_processed(counted, ledger, tmp_path):
    main = request(ledger)
    stage.fit_stage([], tmp_path, main=main, say=lambda line: None)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == sorted([f"{table.name}.csv" for table in public.MAIN_TABLES] + ["datapackage.json"])
    effects = pd.read_csv(tmp_path / "effects.csv")
    assert len(effects) == len(stage.load(main, tmp_path).tables["effects"]) + 1  # with the break rows
    assert {"unit", "lower_95"} <= set(effects.columns)
    folder = tmp_path / "fits" / main.folder
    assert {"break_profile.csv", "alternatives.csv", "meta.json", "arrays.npz"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["key"] == main.key and meta["spec"]["seed"] == TINY.seed and meta["code_version"]


# ----------------------------------------------------------------------------- same numbers either way


def test_loaded_products_equal_a_fit_made_in_the_notebook(ledger, tmp_path, monkeypatch):
    """Stored by the stage, then loaded; or no products at all, so fitted in the kernel."""
    monkeypatch.setattr(stage, "_SESSION", {})
    wanted = request(ledger)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    said = []
    (loaded,) = stage.load_or_fit([wanted], tmp_path, say=said.append)
    assert said == []
    monkeypatch.setattr(stage, "_SESSION", {})
    (fitted_here,) = stage.load_or_fit([wanted], tmp_path / "empty", say=said.append)
    assert len(said) == 1 and said[0].startswith("Fitting the model here: no stored fit matches the main test fit")
    assert_same(loaded, fitted_here)


def test_fits_of_the_same_rows_share_one_view_and_other_rows_get_their_own(ledger, tmp_path, monkeypatch):
    """Loading rebuilds a fit's constraint view and observations from the ledger rows; fits of the
    same rows (a report's main fit and its variants) share them, while other rows or another
    exposure get their own, equal to ones built from scratch."""
    from milcourts.inputs.constraints import build_constraint_view
    from milcourts.model.observations import prepare_observations
    from milcourts.products import store

    monkeypatch.setattr(store, "_VIEWS", {})
    monkeypatch.setattr(store, "_OBSERVATIONS", {})
    fewer = ledger.iloc[:-3].reset_index(drop=True)
    changed = ledger.assign(value=ledger["value"].where(ledger.index != 0, ledger["value"] + 7))
    wanted = [
        request(ledger),
        request(ledger, "poisson", likelihood="poisson"),
        request(ledger, "working-days", exposure="working_days"),
        request(fewer, "fewer"),
        request(changed, "changed"),
    ]
    stage.fit_stage(wanted, tmp_path, say=lambda line: None)
    monkeypatch.setattr(stage, "_SESSION", {})
    said = []
    main, poisson, working, few, other = stage.load_or_fit(wanted, tmp_path, say=said.append)
    assert said == []
    assert poisson.fitted.obs is main.fitted.obs and poisson.fitted.conflicts is main.fitted.conflicts
    assert working.fitted.obs is not main.fitted.obs and working.fitted.conflicts is main.fitted.conflicts
    for products, rows, exposure in (
        (working, ledger, "working_days"),
        (few, fewer, TINY.exposure),
        (other, changed, TINY.exposure),
    ):
        afresh = prepare_observations(build_constraint_view(rows), None, exposure)
        assert products.fitted.obs.figures.equals(afresh.figures)
        np.testing.assert_array_equal(products.fitted.obs.value, afresh.value)
        np.testing.assert_array_equal(products.fitted.obs.days, afresh.days)


# ----------------------------------------------------------------------------- bad or stale products


@pytest.mark.parametrize(
    "damage", ["truncate a table", "truncate the arrays", "edit a number", "delete meta", "garbage meta"]
)
def test_a_damaged_product_is_detected_and_refitted_silently(counted, ledger, tmp_path, caplog, capfd, damage):
    """A warning printed in a report kernel fails the build: recovery says nothing."""
    wanted = request(ledger)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    folder = tmp_path / "fits" / wanted.folder
    target = {
        "truncate a table": "monthly_filings.csv",
        "truncate the arrays": "arrays.npz",
        "edit a number": "effects.csv",
        "delete meta": "meta.json",
        "garbage meta": "meta.json",
    }[damage]
    data = (folder / target).read_bytes()
    if damage == "delete meta":
        (folder / target).unlink()
    elif damage == "edit a number":
        (folder / target).write_bytes(data.replace(b"1", b"2", 1))
    elif damage == "garbage meta":
        (folder / target).write_bytes(b"\x00garbage")
    else:
        (folder / target).write_bytes(data[: len(data) // 2])
    capfd.readouterr()
    assert not stage.is_stored(wanted, tmp_path)
    with caplog.at_level(logging.DEBUG):
        assert stage.load(wanted, tmp_path) is None
        stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    assert counted == ["main", "main"]
    assert stage.load(wanted, tmp_path) is not None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING] and capfd.readouterr().err == ""


def test_products_of_another_ledger_or_code_version_are_not_used(counted, ledger, tmp_path, monkeypatch):
    wanted = request(ledger)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    changed = ledger.copy()
    changed.loc[0, "value"] += 1
    assert stage.load(request(changed), tmp_path) is None  # other ledger rows: another key
    assert stage.load(dataclasses.replace(wanted, spec=dataclasses.replace(TINY, seed=1)), tmp_path) is None
    monkeypatch.setattr(stage, "code_version", lambda: "another-version")
    assert stage.load(wanted, tmp_path) is None and not stage.is_stored(wanted, tmp_path)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    assert counted == ["main", "main"]


def test_pruning_removes_only_stale_fits_the_stage_made(counted, ledger, tmp_path, monkeypatch):
    old = request(ledger, "old")
    stage.fit_stage([old], tmp_path, say=lambda line: None)
    mine = tmp_path / "fits" / "my-own-folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("an analyst's notes")
    monkeypatch.setattr(stage, "code_version", lambda: "a-later-version")
    stage.fit_stage([request(ledger, "new")], tmp_path, say=lambda line: None)
    folders = {p.name for p in (tmp_path / "fits").iterdir()}
    assert old.folder not in folders and "my-own-folder" in folders
    assert (mine / "notes.txt").read_text() == "an analyst's notes"


class _Payload:
    """Unpickling this creates a file: proof that bytes read back were executed."""

    def __init__(self, proof: Path):
        self.proof = proof

    def __reduce__(self):
        return (open, (str(self.proof), "w"))


def test_bytes_planted_among_the_products_are_never_executed(counted, ledger, tmp_path):
    wanted = request(ledger)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    proof = tmp_path / "executed"
    payload = pickle.dumps(_Payload(proof))
    for path in [p for p in (tmp_path / "fits").rglob("*") if p.is_file()]:
        path.write_bytes(payload)
    for directory in [tmp_path / "fits", *(p for p in (tmp_path / "fits").rglob("*") if p.is_dir())]:
        (directory / "evil.pkl").write_bytes(payload)
    assert stage.load(wanted, tmp_path) is None
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    assert stage.load(wanted, tmp_path) is not None
    assert not proof.exists(), "a planted pickle was executed"


def test_an_object_array_in_an_entry_with_a_matching_checksum_is_refused(counted, ledger, tmp_path):
    wanted = request(ledger)
    stage.fit_stage([wanted], tmp_path, say=lambda line: None)
    folder = tmp_path / "fits" / wanted.folder
    proof = tmp_path / "executed"
    buffer = io.BytesIO()
    np.savez(buffer, params=np.array([_Payload(proof)], dtype=object))
    (folder / "arrays.npz").write_bytes(buffer.getvalue())
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["arrays.npz"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    assert stage.load(wanted, tmp_path) is None
    assert not proof.exists()


def test_the_build_and_the_notebooks_look_for_products_in_the_same_place(tmp_path, monkeypatch):
    monkeypatch.delenv("MILCOURTS_PROCESSED_DIR")
    assert BuildSettings().processed_dir == paths.processed_dir() == paths.PROCESSED_DATA_DIR
    monkeypatch.setenv("MILCOURTS_PROCESSED_DIR", str(tmp_path))
    assert BuildSettings().processed_dir == paths.processed_dir() == tmp_path


def test_the_main_data_package_is_valid_frictionless_with_units_in_names(counted, ledger, tmp_path):
    import frictionless

    stage.fit_stage([], tmp_path, main=request(ledger), say=lambda line: None)
    report = frictionless.validate(str(tmp_path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    package = json.loads((tmp_path / "datapackage.json").read_text())
    assert package["licenses"][0]["name"] == "CC-BY-4.0" and package["sources"]
    monthly = next(r for r in package["resources"] if r["name"] == "monthly-filings")
    units = {f["name"]: f.get("unit") for f in monthly["schema"]["fields"]}
    assert units["cases_expected"] == "cases" and units["cases_upper_95"] == "cases"
