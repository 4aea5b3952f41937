"""The fit cache: reuse only on identical inputs, recover from damage, share work between processes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time

import pandas as pd
import pytest

from milcourts import fitcache
from milcourts.model import ModelSpec


@pytest.fixture
def computed(monkeypatch, tmp_path):
    """Point the cache at a fresh directory and replace the fit by a recorder of what was fitted."""
    monkeypatch.setenv("MILCOURTS_FIT_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_compute(ledger, spec, condition):
        calls.append((float(ledger["value"].sum()), spec.break_month, condition))
        return ("fit", float(ledger["value"].sum()), spec.break_month, condition)

    monkeypatch.setattr(fitcache, "_compute", fake_compute)
    return calls


LEDGER = pd.DataFrame({"figure_id": ["F1", "F2"], "value": [10.0, 20.0]})


def test_an_identical_request_is_read_back_not_refitted(computed):
    first = fitcache.fit_and_simulate(LEDGER, ModelSpec())
    again = fitcache.fit_and_simulate(LEDGER.copy(), ModelSpec())
    assert first == again == ("fit", 30.0, "2022-10", True)
    assert len(computed) == 1


@pytest.mark.parametrize("change", ["ledger value", "spec", "conditioning"])
def test_any_change_of_input_is_a_new_fit(computed, change):
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    if change == "ledger value":
        fitcache.fit_and_simulate(LEDGER.assign(value=[10.0, 21.0]), ModelSpec())
    elif change == "spec":
        fitcache.fit_and_simulate(LEDGER, ModelSpec(break_month="2022-11"))
    else:
        fitcache.fit_and_simulate(LEDGER, ModelSpec(), condition=False)
    assert len(computed) == 2


def test_a_code_change_starts_a_new_directory_and_drops_the_old(computed, monkeypatch, tmp_path):
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    old = [d.name for d in (tmp_path / "cache").iterdir()]
    monkeypatch.setattr(fitcache, "package_fingerprint", lambda: "edited source")
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    assert len(computed) == 2
    assert [d.name for d in (tmp_path / "cache").iterdir()] != old
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_a_damaged_entry_is_refitted_and_replaced(computed, tmp_path):
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    (entry,) = (tmp_path / "cache").rglob("*.pkl")
    entry.write_bytes(b"not a pickle")
    assert fitcache.fit_and_simulate(LEDGER, ModelSpec()) == ("fit", 30.0, "2022-10", True)
    assert len(computed) == 2
    assert fitcache.fit_and_simulate(LEDGER, ModelSpec()) == ("fit", 30.0, "2022-10", True)
    assert len(computed) == 2


def test_off_fits_every_time(computed, monkeypatch, tmp_path):
    monkeypatch.setenv("MILCOURTS_FIT_CACHE", "off")
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    fitcache.fit_and_simulate(LEDGER, ModelSpec())
    assert len(computed) == 2
    assert not (tmp_path / "cache").exists()


def test_a_fit_another_process_is_computing_is_awaited_not_duplicated(computed, tmp_path):
    """While the first request's lock is held elsewhere, the second is computed; then the caller
    waits and reads the first from the cache, as written by its holder."""
    spec_a, spec_b = ModelSpec(), ModelSpec(break_month="2022-11")
    directory = fitcache._directory()
    key_a = fitcache.request_key(LEDGER, spec_a, True)
    results = []
    with (directory / f"{key_a}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process, as far as flock is concerned
        worker = threading.Thread(target=lambda: results.append(fitcache.fit_and_simulate_all(
            [(LEDGER, spec_a, True), (LEDGER, spec_b, True)])))
        worker.start()
        for _ in range(200):
            if computed:
                break
            time.sleep(0.05)
        assert computed == [(30.0, "2022-11", True)]  # B first: A is someone else's
        fitcache._store(directory / f"{key_a}.pkl", ("fit by the other process",))
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert results == [[("fit by the other process",), ("fit", 30.0, "2022-11", True)]]
    assert computed == [(30.0, "2022-11", True)]


def _post_as(pid: int, ledger: pd.DataFrame, spec: ModelSpec) -> None:
    """A post in `wanted/` as the process `pid` leaves it."""
    directory = fitcache._directory()
    key = fitcache.request_key(ledger, spec, True)
    (directory / "wanted").mkdir(exist_ok=True)
    fitcache._store(directory / "wanted" / f"{key}.pkl", (pid, (ledger, spec, True)))


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_a_caller_left_waiting_computes_a_fit_another_process_wants(computed, tmp_path):
    """Its own fit is held elsewhere: before waiting, it computes one that a live process posted."""
    spec_own, spec_theirs = ModelSpec(), ModelSpec(break_month="2022-12")
    directory = fitcache._directory()
    _post_as(os.getppid(), LEDGER, spec_theirs)  # a live process other than this one
    key_own = fitcache.request_key(LEDGER, spec_own, True)
    results = []
    with (directory / f"{key_own}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: results.append(fitcache.fit_and_simulate_all([(LEDGER, spec_own, True)])))
        worker.start()
        for _ in range(200):
            if computed:
                break
            time.sleep(0.05)
        assert computed == [(30.0, "2022-12", True)]  # theirs, while it cannot have its own
        fitcache._store(directory / f"{key_own}.pkl", ("own fit, stored by its holder",))
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert results == [[("own fit, stored by its holder",)]]
    theirs = fitcache.request_key(LEDGER, spec_theirs, True)
    assert fitcache._load(directory / f"{theirs}.pkl") == ("fit", 30.0, "2022-12", True)  # there for its owner
    assert not list((directory / "wanted").iterdir())


def test_posts_of_a_process_that_died_are_dropped_not_computed(computed):
    _post_as(_dead_pid(), LEDGER, ModelSpec(break_month="2022-12"))
    assert fitcache._compute_one_wanted(fitcache._directory()) is False
    assert computed == []
    assert not list((fitcache._directory() / "wanted").iterdir())


def test_a_fit_that_fails_for_a_helper_is_left_to_its_owner(computed, monkeypatch):
    """The helper's own report must not fail on another's fit; the owner computes it and raises."""
    def failing(ledger, spec, condition):
        raise FloatingPointError("overflow in someone else's fit")

    monkeypatch.setattr(fitcache, "_compute", failing)
    _post_as(os.getppid(), LEDGER, ModelSpec(break_month="2022-12"))
    assert fitcache._compute_one_wanted(fitcache._directory()) is False
    assert not list((fitcache._directory() / "wanted").iterdir())


def test_a_caller_that_stops_early_withdraws_its_posts(computed, monkeypatch):
    def interrupted(ledger, spec, condition):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitcache, "_compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitcache.fit_and_simulate_all([(LEDGER, ModelSpec(), True), (LEDGER, ModelSpec(break_month="2022-12"), True)])
    assert not list((fitcache._directory() / "wanted").iterdir())


def test_a_finished_request_leaves_no_posts(computed):
    fitcache.fit_and_simulate_all([(LEDGER, ModelSpec(), True), (LEDGER, ModelSpec(break_month="2022-12"), True)])
    assert len(computed) == 2
    assert not list((fitcache._directory() / "wanted").iterdir())
