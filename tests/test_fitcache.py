"""The fit cache: reuse only on identical inputs, never trust or execute what is on disk, never
touch what is not its own, and share work between processes."""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from milcourts.products import cache as fitcache
from milcourts.inputs.constraints import build_constraint_view
from milcourts.model.fit import fit_filings_model
from milcourts.model.simulate import simulate
from milcourts.model.spec import ModelSpec
from milcourts.checks.synthetic import aggregate_pattern, default_truth, publish, simulate_counts

TINY = ModelSpec(penalty_grid=(1.0,), n_draws=50)


@pytest.fixture(scope="module")
def tiny_fit():
    truth = default_truth()
    ledger = publish(truth, simulate_counts(truth, np.random.default_rng(7)), aggregate_pattern())
    fitted = fit_filings_model(build_constraint_view(ledger), TINY)
    return ledger, fitted, simulate(fitted)


@pytest.fixture
def cache(monkeypatch, tmp_path, tiny_fit):
    """A cache directory of the test's own; the fit is replaced by a recorder returning the real
    tiny fit under the spec asked for."""
    ledger, fitted, draws = tiny_fit
    calls = []

    def compute(ledger, spec, condition):
        calls.append((float(ledger["value"].sum()), spec.break_month, condition))
        return dataclasses.replace(fitted, spec=spec), dataclasses.replace(draws, is_conditioned=condition)

    monkeypatch.setattr(fitcache, "_compute", compute)
    root = tmp_path / "cache"
    monkeypatch.setenv("MILCOURTS_FIT_CACHE", str(root))
    return root, ledger, calls


def assert_same_fit(result, tiny_fit):
    _, fitted, draws = tiny_fit
    got_fitted, got_draws = result
    for name in ("params", "cov", "hess_lik"):
        np.testing.assert_array_equal(getattr(got_fitted, name), getattr(fitted, name))
    assert got_fitted.knots == fitted.knots and got_fitted.penalty == fitted.penalty
    assert got_fitted.selection.equals(fitted.selection)
    assert got_fitted.obs.figures.equals(fitted.obs.figures)
    for name in ("mu", "counts", "counterfactual", "coef", "alpha", "tau", "base_rho", "base_sigma"):
        np.testing.assert_array_equal(getattr(got_draws, name), getattr(draws, name))
    assert got_draws.months.equals(draws.months) and got_draws.n_observed == draws.n_observed


def test_an_identical_request_is_read_back_exactly_not_refitted(cache, tiny_fit):
    _, ledger, calls = cache
    first = fitcache.fit_and_simulate(ledger, TINY)
    again = fitcache.fit_and_simulate(ledger.copy(), TINY)
    assert len(calls) == 1
    assert_same_fit(first, tiny_fit)
    assert_same_fit(again, tiny_fit)


@pytest.mark.parametrize("change", ["ledger value", "spec", "conditioning"])
def test_any_change_of_input_is_a_new_fit(cache, change):
    _, ledger, calls = cache
    fitcache.fit_and_simulate(ledger, TINY)
    if change == "ledger value":
        changed = ledger.copy()
        changed.loc[0, "value"] += 1
        fitcache.fit_and_simulate(changed, TINY)
    elif change == "spec":
        fitcache.fit_and_simulate(ledger, dataclasses.replace(TINY, break_month="2022-11"))
    else:
        fitcache.fit_and_simulate(ledger, TINY, condition=False)
    assert len(calls) == 2


def test_off_fits_every_time(cache, monkeypatch):
    root, ledger, calls = cache
    monkeypatch.setenv("MILCOURTS_FIT_CACHE", "off")
    fitcache.fit_and_simulate(ledger, TINY)
    fitcache.fit_and_simulate(ledger, TINY)
    assert len(calls) == 2
    assert not root.exists()


# ----------------------------------------------------------------------------- what is not ours

def test_a_folder_the_cache_is_pointed_at_keeps_everything_of_its_owner(cache, monkeypatch):
    """`MILCOURTS_FIT_CACHE=D` once emptied D: only folders the cache made and marked are cleaned."""
    root, ledger, _ = cache
    (root / "precious").mkdir(parents=True)
    (root / "precious" / "thesis.tex").write_text("years of work")
    (root / "0123456789abcdef").mkdir()          # named like an old cache version, not made by it
    (root / "0123456789abcdef" / "notes.txt").write_text("mine")
    (root / "milcourts-fits-0000000000000000").mkdir()   # our name, but no marker of ours
    (root / "milcourts-fits-0000000000000000" / "data.csv").write_text("also mine")
    (root / "readme.txt").write_text("top-level file")
    fitcache.fit_and_simulate(ledger, TINY)
    monkeypatch.setattr(fitcache, "_code_version", lambda: "a-later-code-version")
    fitcache.fit_and_simulate(ledger, TINY)      # a new code version cleans up its stale entries
    assert (root / "precious" / "thesis.tex").read_text() == "years of work"
    assert (root / "0123456789abcdef" / "notes.txt").read_text() == "mine"
    assert (root / "milcourts-fits-0000000000000000" / "data.csv").read_text() == "also mine"
    assert (root / "readme.txt").read_text() == "top-level file"


def test_a_new_code_version_removes_the_stale_entries_it_made(cache, monkeypatch):
    root, ledger, calls = cache
    fitcache.fit_and_simulate(ledger, TINY)
    before = set(root.iterdir())
    monkeypatch.setattr(fitcache, "_code_version", lambda: "a-later-code-version")
    fitcache.fit_and_simulate(ledger, TINY)
    assert len(calls) == 2
    assert not (before & set(root.iterdir())), "the old version's entries should be gone"


class _Payload:
    """Unpickling this creates a file: proof that bytes read back were executed."""

    def __init__(self, proof: Path):
        self.proof = proof

    def __reduce__(self):
        return (open, (str(self.proof), "w"))


def test_bytes_planted_in_the_cache_are_never_executed(cache, tmp_path, tiny_fit):
    root, ledger, calls = cache
    fitcache.fit_and_simulate(ledger, TINY)
    proof = tmp_path / "executed"
    payload = pickle.dumps(_Payload(proof))
    for path in [p for p in root.rglob("*") if p.is_file()]:
        path.write_bytes(payload)                 # every file the cache wrote, replaced
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (directory / "evil.pkl").write_bytes(payload)
        (directory / "wanted").mkdir(exist_ok=True)
        (directory / "wanted" / "evil.pkl").write_bytes(payload)
    result = fitcache.fit_and_simulate(ledger, TINY)
    assert not proof.exists(), "a planted pickle was executed"
    assert_same_fit(result, tiny_fit)


def test_an_object_array_planted_in_a_valid_looking_entry_is_refused(cache, tmp_path, tiny_fit):
    """Even with a matching checksum in meta.json, arrays are read without pickle."""
    import hashlib
    import io
    import json

    root, ledger, calls = cache
    fitcache.fit_and_simulate(ledger, TINY)
    (entry,) = [p for p in root.rglob("meta.json")]
    proof = tmp_path / "executed"
    buffer = io.BytesIO()
    np.savez(buffer, params=np.array([_Payload(proof)], dtype=object))
    (entry.parent / "arrays.npz").write_bytes(buffer.getvalue())
    meta = json.loads(entry.read_text())
    meta["files"]["arrays.npz"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    entry.write_text(json.dumps(meta))
    assert_same_fit(fitcache.fit_and_simulate(ledger, TINY), tiny_fit)
    assert not proof.exists() and len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "delete"])
def test_a_damaged_entry_is_refitted_silently_and_repaired(cache, tiny_fit, caplog, capfd, damage):
    """A warning printed inside a report kernel fails the build: recovery must be silent."""
    root, ledger, calls = cache
    fitcache.fit_and_simulate(ledger, TINY)
    capfd.readouterr()
    for path in [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]:
        data = path.read_bytes()
        if damage == "delete":
            path.unlink()
        else:
            path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 10, "empty": b""}[damage])
    with caplog.at_level(logging.DEBUG):
        result = fitcache.fit_and_simulate(ledger, TINY)
    assert_same_fit(result, tiny_fit)
    assert len(calls) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert capfd.readouterr().err == ""
    assert_same_fit(fitcache.fit_and_simulate(ledger, TINY), tiny_fit)
    assert len(calls) == 2, "the repaired entry should be read back"


# ----------------------------------------------------------------------------- parallel processes

def test_a_fit_another_process_is_computing_is_awaited_not_duplicated(cache, tiny_fit):
    """While the first request's lock is held elsewhere, the second is computed; then the caller
    waits and reads the first from the cache, as written by its holder."""
    _, ledger, calls = cache
    spec_a, spec_b = TINY, dataclasses.replace(TINY, break_month="2022-11")
    directory = fitcache._directory()
    key_a = fitcache.request_key(ledger, spec_a, True)
    results = []
    with (directory / f"{key_a}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process, as far as flock is concerned
        worker = threading.Thread(target=lambda: results.append(fitcache.fit_and_simulate_all(
            [(ledger, spec_a, True), (ledger, spec_b, True)])))
        worker.start()
        for _ in range(200):
            if calls:
                break
            time.sleep(0.05)
        assert [c[1] for c in calls] == ["2022-11"]  # B first: A is someone else's
        fitcache._read_or_compute(directory, key_a, (ledger, spec_a, True))  # the holder stores A
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert [c[1] for c in calls] == ["2022-11", "2022-10"]  # A computed once, by its holder
    assert [fit.spec.break_month for fit, _ in results[0]] == ["2022-10", "2022-11"]
