"""`make bench`: wall-clock of the model fit and the validation, printed as ratios to their goals.

Timings are measured here, never asserted in tests: the machines are noisy. A ratio above 1 means
the goal is missed.
"""

from __future__ import annotations

import statistics
import sys
import time

from milcourts import paths
from milcourts.constraints import build_constraint_view
from milcourts.filings import fit_from_ledger
from milcourts.ledger import load_ledger
from milcourts.model import fit_filings_model, simulate
from milcourts.validation import run_validation

GOALS_SECONDS = {"joint model fit (penalty selection included)": 10.0, "make validate": 300.0}


def _timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    ledger = load_ledger(paths.LEDGER_CSV)
    view = build_constraint_view(ledger)
    fitted = fit_filings_model(view)
    measured = {
        "joint model fit (penalty selection included)": _timed(lambda: fit_filings_model(view), 3),
        "simulation of 2000 draws with conditioning": _timed(lambda: simulate(fitted), 3),
        "fit + simulate from the ledger file (what `predict` does)": _timed(lambda: fit_from_ledger(), 1),
        "make validate": _timed(lambda: run_validation(ledger), 1),
    }
    print(f"{'step':60s} {'seconds':>9s} {'goal':>7s} {'ratio':>6s}")
    for step, seconds in measured.items():
        goal = GOALS_SECONDS.get(step)
        ratio = f"{seconds / goal:6.2f}" if goal else "     -"
        print(f"{step:60s} {seconds:9.2f} {goal if goal else '-':>7} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
