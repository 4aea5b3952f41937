"""What each report needs fitted: its model specifications, named, described and keyed.

The build asks these functions for the fits of every run before any notebook starts, and the fit
stage fits each distinct one once; the notebooks then ask the very same functions, so the products
the stage stored are found by key. A request is the ledger rows a fit sees, its spec, and whether
its monthly counts are drawn conditioned on the figures; its key hashes exactly those.

Parameters are accepted as papermill's `-p` produces them (`-p article 338` arrives as the int
338), normalised here once for the build and the kernel alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd

from milcourts.inputs.constraints import build_constraint_view
from milcourts.inputs.ledger import published_by
from milcourts.model.spec import LIKELIHOODS, ModelSpec
from milcourts.vocabulary import (
    ALL_ARTICLES,
    ARTICLES,
    COURT_FILINGS,
    DEFAULT_BREAK_MONTH,
)

# Parameter draws per sensitivity refit: enough for the median and a 95% interval of each effect.
SENSITIVITY_DRAWS = 500
# The "recent figures dropped" variant leaves out figures ending in the last this many months,
# where reporting lag bites hardest.
RECENT_MONTHS_DROPPED = 3
MAX_REPORT_FORECAST_MONTHS = 24


@dataclass(frozen=True)
class FitRequest:
    """One fit a report needs. `name` says what it is (it names the products' folder), and
    `description` says it in words for a reader of data/processed."""

    name: str
    description: str
    ledger: pd.DataFrame = field(repr=False, compare=False)
    spec: ModelSpec = ModelSpec()
    condition: bool = True  # monthly counts drawn given the published figures
    # also the model's checks (break-date profile, other estimators): not part of the key, the same
    # fit with more tables
    with_checks: bool = field(default=False, compare=False)

    @cached_property
    def key(self) -> str:
        """Hash of everything the fit and its draws depend on, except the code (see stage)."""
        digest = hashlib.sha256()
        digest.update(repr(list(self.ledger.columns)).encode())
        digest.update(pd.util.hash_pandas_object(self.ledger, index=False).to_numpy().tobytes())
        digest.update(repr(self.spec).encode())
        digest.update(b"conditioned" if self.condition else b"unconditioned")
        return digest.hexdigest()

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.key[:12]}"


class ReportParameterError(ValueError):
    """A report parameter that cannot be used; the message names it, what it got and its type."""


def _got(value) -> str:
    return f"got {value!r} ({type(value).__name__})"


def report_spec(break_month=DEFAULT_BREAK_MONTH, forecast_months=6, likelihood="negative_binomial") -> ModelSpec:
    """The model spec of a report's parameters, checked (as papermill or the run file gives them)."""
    try:
        month = pd.Period(str(break_month), "M")
    except ValueError as error:
        raise ReportParameterError(f"break_month must be a month YYYY-MM, {_got(break_month)}") from error
    if (
        isinstance(forecast_months, bool)
        or not isinstance(forecast_months, int)
        or not 0 <= forecast_months <= MAX_REPORT_FORECAST_MONTHS
    ):
        raise ReportParameterError(
            f"forecast_months must be a whole number from 0 to {MAX_REPORT_FORECAST_MONTHS}, {_got(forecast_months)}"
        )
    if likelihood not in LIKELIHOODS:
        raise ReportParameterError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, {_got(likelihood)}")
    return ModelSpec(break_month=str(month), forecast_months=forecast_months, likelihood=likelihood)


def report_article(article) -> str:
    """An article code; papermill turns `-p article 338` into the int 338, which is accepted."""
    code = str(article) if isinstance(article, (str, int)) and not isinstance(article, bool) else None
    if code not in (*ARTICLES, ALL_ARTICLES):
        raise ReportParameterError(f"article must be one of {', '.join((*ARTICLES, ALL_ARTICLES))}, {_got(article)}")
    return code


def report_train_end(train_end) -> str:
    """The training cut-off: empty (every figure) or a date YYYY-MM-DD."""
    if train_end in ("", None):
        return ""
    try:
        return pd.Timestamp(str(train_end)).date().isoformat()
    except ValueError as error:
        raise ReportParameterError(f'train_end must be "" or a date YYYY-MM-DD, {_got(train_end)}') from error


def _month_words(month: pd.Period) -> str:
    return f"{month:%B %Y}"


def main_request(ledger: pd.DataFrame, spec: ModelSpec = ModelSpec(), train_end: str = "") -> FitRequest:
    """The fit a report is about: every figure (or those published by `train_end`)."""
    if train_end:
        return FitRequest(
            "main-to-" + train_end,
            f"the model fitted on figures published by {train_end}",
            published_by(ledger, train_end),
            spec,
        )
    return FitRequest("main", "the model fitted on every published figure", ledger, spec)


def sensitivity_requests(main: FitRequest) -> list[FitRequest]:
    """Other defensible choices, each a full refit (penalty selection repeated): the break a month
    earlier and later, without the latest knot, the other month-count likelihood, working days as
    exposure, and without the figures covering the most recent months (reporting lag)."""
    ledger, spec = main.ledger, replace(main.spec, n_draws=SENSITIVITY_DRAWS)
    last_end = ledger.loc[ledger["series"] == COURT_FILINGS, "period_end"].max()
    cutoff = (last_end.to_period("M") - RECENT_MONTHS_DROPPED).end_time.normalize()
    month = pd.Period(spec.break_month, "M")
    likelihood = "negative_binomial" if spec.likelihood == "poisson" else "poisson"
    exposure = "calendar_days" if spec.exposure == "working_days" else "working_days"
    variants = [
        (
            f"break-{month - 1}",
            f"break in {_month_words(month - 1)}",
            ledger,
            replace(spec, break_month=str(month - 1)),
        ),
        (
            f"break-{month + 1}",
            f"break in {_month_words(month + 1)}",
            ledger,
            replace(spec, break_month=str(month + 1)),
        ),
        (
            "without-latest-knot",
            "without the latest knot",
            ledger,
            replace(spec, knot_offsets_months=spec.knot_offsets_months[:-1]),
        ),
        (
            likelihood.replace("_", "-"),
            f"{'Poisson' if likelihood == 'poisson' else 'negative binomial'} month counts",
            ledger,
            replace(spec, likelihood=likelihood),
        ),
        (
            exposure.replace("_", "-"),
            f"{exposure.replace('_', ' ')} as exposure",
            ledger,
            replace(spec, exposure=exposure),
        ),
        (
            f"figures-to-{cutoff.date()}",
            f"figures ending after {cutoff:%-d %B %Y} dropped",
            ledger[ledger["period_end"] <= cutoff].reset_index(drop=True),
            spec,
        ),
    ]
    return [
        FitRequest(f"{main.name}-{name}", description, rows, variant_spec, condition=False)
        for name, description, rows, variant_spec in variants
    ]


def cross_check_request(main: FitRequest) -> FitRequest:
    """The model without any figure published for the three articles together, forecast far
    enough to reach every such figure: the summary scores it against them out of sample."""
    ledger = main.ledger
    is_all = (ledger["series"] == COURT_FILINGS) & (ledger["article"] == ALL_ARTICLES)
    without = ledger[~is_all].reset_index(drop=True)
    reduced_months = build_constraint_view(without, with_conflicts=False).months  # months only: no conflict search
    needed = (ledger.loc[is_all, "period_end"].max().to_period("M") - reduced_months[-1]).n if is_all.any() else 0
    spec = replace(main.spec, forecast_months=max(main.spec.forecast_months, needed))
    return FitRequest(
        f"{main.name}-without-all-articles",
        "the model fitted without the figures published for "
        "the three articles together (the summary's out-of-sample cross-check)",
        without,
        spec,
    )


def trend_requests(
    ledger: pd.DataFrame,
    break_month=DEFAULT_BREAK_MONTH,
    train_end="",
    forecast_months=6,
    likelihood="negative_binomial",
    **_ignored,
) -> list[FitRequest]:
    """The trend report's fits: the main fit, then its sensitivity refits."""
    main = main_request(ledger, report_spec(break_month, forecast_months, likelihood), report_train_end(train_end))
    return [main, *sensitivity_requests(main)]


def summary_requests(
    ledger: pd.DataFrame, break_month=DEFAULT_BREAK_MONTH, forecast_months=6, likelihood="negative_binomial", **_ignored
) -> list[FitRequest]:
    """The summary's fits: the main fit (shared with the trend reports) and the cross-check."""
    main = main_request(ledger, report_spec(break_month, forecast_months, likelihood))
    return [main, cross_check_request(main)]


def methods_requests(ledger: pd.DataFrame, **_ignored) -> list[FitRequest]:
    """The methods report's fit: the main fit with the model's checks."""
    return [replace(main_request(ledger), with_checks=True)]


# Which notebook needs which fits, by the notebook's file name; a notebook not listed needs none.
REPORT_NEEDS = {"02-filings-trend": trend_requests, "03-summary": summary_requests, "04-methods": methods_requests}


def requests_for_run(notebook: Path, parameters: dict, ledger: pd.DataFrame) -> list[FitRequest]:
    """The fits a run needs, from its notebook and its parameters (notebook defaults included)."""
    needs = REPORT_NEEDS.get(Path(notebook).stem)
    return needs(ledger, **parameters) if needs else []
