"""Ledgers with a known answer: true monthly counts from chosen effects, published as aggregates.

Used by the unit tests (does the fit recover the truth?) and by the simulation study on the real
observation pattern (bias and coverage over many replicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from milcourts.inputs.constraints import month_weights
from milcourts.inputs.ledger import LEDGER_COLUMNS
from milcourts.model.observations import MONTHS_PER_YEAR, design_matrix
from milcourts.model.spec import MOBILISATION_BASE_EARLY_MONTHS, MOBILISATION_BASE_START
from milcourts.vocabulary import ALL_ARTICLES, ARTICLES


@dataclass(frozen=True)
class Truth:
    """Per-article monthly log-rate coefficients in the model's own terms (slopes per year)."""

    months: pd.PeriodIndex
    break_month: str
    knot_offsets_months: tuple[int, ...]
    coef: np.ndarray  # 3 articles x (intercept, slope, step, knot changes...)
    phi: float | None = 0.01  # month-to-month count dispersion (None: drawn per replicate)
    # share of cases a "since mobilisation" total counts: (from 2023 on, further share Sep-Dec 2022);
    # (1, 1) publishes every case, as a release that counted all parts would
    mobilisation_base_share: tuple[float, float] = (1.0, 1.0)

    @property
    def break_index(self) -> int:
        return int((pd.Period(self.break_month, "M") - self.months[0]).n)

    def monthly_means(self) -> np.ndarray:
        design = design_matrix(len(self.months), self.break_index, self.knot_offsets_months)
        days = np.array([m.days_in_month for m in self.months], dtype=float)
        return np.exp(self.coef @ design.T) * days

    def monthly_growth_pct(self, article: str, segment: int) -> float:
        """Growth per month in segment 0 (before the break), 1 (break to first knot), 2, ..."""
        c = self.coef[ARTICLES.index(article)]
        slope = c[1] + (c[3 : 3 + segment - 1].sum() if segment > 1 else 0.0)
        return float(100 * np.expm1(slope / MONTHS_PER_YEAR))


def default_truth(months: pd.PeriodIndex | None = None) -> Truth:
    """A rise like the real one: flat-ish before the break, a doubling at it, fast growth for a
    few months as filings catch up with offences, then slower growth."""
    months = months if months is not None else pd.period_range("2021-01", "2024-12", freq="M")
    knots = (3, 6, 9, 12, 18)
    coef = np.zeros((3, 3 + len(knots)))
    coef[:, 0] = np.log(np.array([40.0, 2.0, 1.0]) / 30.4)  # about 40, 2, 1 cases a month before
    coef[:, 1] = 0.24  # 2% a month before the break
    coef[:, 2] = np.log(2.0)  # level doubles at the break
    coef[:, 3] = 2.4 - 0.24  # 22% a month from the first knot ...
    coef[:, 4] = -2.4 + 0.6  # ... then 5% a month
    return Truth(months=months, break_month="2022-10", knot_offsets_months=knots, coef=coef)


def simulate_counts(truth: Truth, rng: np.random.Generator) -> np.ndarray:
    mu = truth.monthly_means()
    size = 1.0 / truth.phi
    return rng.negative_binomial(size, size / (size + mu)).astype(float)


def publication_weights(truth: Truth, pattern: pd.DataFrame) -> np.ndarray:
    """(figures, articles, months): what each figure of the pattern counts of each true
    article-month: the share of the month its period covers (a partial month its share of the
    month's count), times the counting base of a "since mobilisation" total. A figure's value is
    then the weighted sum of the true counts, so replicates of one pattern need this only once."""
    weights = np.zeros((len(pattern), len(ARTICLES), len(truth.months)))
    for i, spec in enumerate(pattern.itertuples()):
        start, end = pd.Timestamp(spec.period_start), pd.Timestamp(spec.period_end)
        shares = month_weights(start, end)
        idx = [truth.months.get_loc(m) for m in shares]
        articles = range(3) if spec.article == ALL_ARTICLES else [ARTICLES.index(spec.article)]
        counted = np.ones(len(shares))
        if start == MOBILISATION_BASE_START:
            rho, sigma = truth.mobilisation_base_share
            counted = np.array([rho * (sigma if m in MOBILISATION_BASE_EARLY_MONTHS else 1.0) for m in shares])
        for a in articles:
            weights[i, a, idx] = np.array(list(shares.values())) * counted
    return weights


def published_values(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each figure's value given the true counts (articles x months), rounded as published."""
    return np.round(np.einsum("jat,at->j", weights, counts))


def publish(truth: Truth, counts: np.ndarray, pattern: pd.DataFrame) -> pd.DataFrame:
    """The pattern's figures (article, period_start, period_end, source_date, qualifier) with the
    values the true counts imply (publication_weights)."""
    values = published_values(publication_weights(truth, pattern), counts)
    rows = []
    for i, (spec, value) in enumerate(zip(pattern.itertuples(), values), start=1):
        start, end = pd.Timestamp(spec.period_start), pd.Timestamp(spec.period_end)
        rows.append(
            {
                "figure_id": f"F{i:03d}",
                "series": "court_filings",
                "article": spec.article,
                "measure": "cumulative" if start.day != 1 else "count",
                "period_start": start,
                "period_end": end,
                "value": float(value),
                "value_qualifier": getattr(spec, "value_qualifier", "exact"),
                "source_publisher": "Synthetic",
                "source_title": "synthetic",
                "source_url": "https://example.org/",
                "source_date": pd.Timestamp(spec.source_date),
                "quote": "synthetic figure",
                "notes": "",
            }
        )
    ledger = pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))
    ledger.insert(0, "ledger_line", np.arange(2, len(ledger) + 2))
    return ledger


def aggregate_pattern(
    articles=ARTICLES, include_all_articles: bool = True, months_2024: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Annual totals 2021-2024, running totals since mobilisation, all published well after, and
    the single months of 2024 of the articles in `months_2024`.

    Single months are usually asked of Art. 337 alone, as the project's ledger publishes them (the
    others it gives as totals only): three articles' totals and its twelve months are 38 figures,
    which the compiled likelihood pads to the same shape as the project's ledger, so that tests
    fitting them share one compilation (every article's months, 62 figures, took another shape and
    about 20 s of processor time to compile per test process)."""
    late = "2025-06-30"
    rows = []
    for article in articles:
        for year in (2021, 2022, 2023, 2024):
            rows.append((article, f"{year}-01-01", f"{year}-12-31", late))
        for end in ("2023-03-21", "2023-11-21", "2024-06-18"):
            rows.append((article, "2022-09-21", end, late))
        rows.append((article, "2023-01-01", "2023-06-30", late))
        if article in months_2024:
            rows += [
                (article, f"2024-{m:02d}-01", str(pd.Period(f"2024-{m:02d}", "M").end_time.date()), late)
                for m in range(1, 13)
            ]
    if include_all_articles:
        rows += [(ALL_ARTICLES, f"{y}-01-01", f"{y}-12-31", late) for y in (2023, 2024)]
    return pd.DataFrame(rows, columns=["article", "period_start", "period_end", "source_date"])
