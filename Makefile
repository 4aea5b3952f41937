# Run `make help` for the list. `make reports` and `make test` set up what is missing first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: help setup reports check-reports test model validate bench validate-ledger lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install what is missing: Chromium + fonts (apt), the locked Python environment (.venv)
	@bash scripts/setup.sh

# The trend reports show the validation results. The build recomputes them first when the ledger or
# the package changed since the last `make validate` (about half a minute), in its own process: its
# fit stage then reuses the likelihood the validation compiled instead of compiling it again.
reports: setup ## build every report in reports.yaml into reports/ (validates the model first if stale)
	$(PY) -m milcourts build --validate-if-stale

# The published reports are checked by their own target, not by `make test`: building every report
# takes minutes, and `make reports` builds them anyway (continuous integration runs both, then this).
check-reports: setup ## check the reports in reports/ as readers get them: current, no code or jargon, page one's numbers
	$(PY) -m pytest -m published tests/test_published_reports.py

test: setup ## run the test suite on every core, all but check-reports (`.venv/bin/python -m pytest tests/x.py` runs one file alone)
	$(PY) -m pytest -n auto --dist worksteal

model: setup ## fit the monthly filings model; write data/processed/*.csv
	$(PY) -m milcourts fit

validate: setup ## leave-one-out, rolling-origin and simulation checks of the model; data/processed/validation_*.csv
	$(PY) -m milcourts validate

bench: setup ## time the model fit, the validation and the report build; print ratios to their goals
	$(PY) benchmarks/bench.py

validate-ledger: setup ## check data/raw/published_figures.csv and print a one-line summary
	$(PY) -m milcourts validate-ledger data/raw/published_figures.csv

lock: ## re-resolve uv.lock after editing the dependencies in pyproject.toml, then sync .venv
	@bash scripts/setup.sh --tools-only
	.tools/bin/uv lock
	@bash scripts/setup.sh

clean: ## remove build/ (staging, failed runs); reports/ and .venv are kept
	rm -rf build
