"""The tables a reader can reuse, as published: column names that carry their units, and a
Frictionless data package (`datapackage.json`, Table Schema) describing every one of them.

The same public tables are written twice: the main fit's to data/processed/ by the fit stage, and
each report's beside its HTML and PDF in reports/<report>-data/. They are renamed copies of the
fit's own tables (products/stage), so the numbers are exactly those the reports print.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from milcourts.atomic import write_csv_tables, write_text_atomically
from milcourts.model.tables import MAX_INTERVAL_FACTOR, MAX_POSTERIOR_TO_PRIOR_SD
from milcourts.vocabulary import ARTICLES

LICENCE = {
    "name": "CC-BY-4.0",
    "title": "Creative Commons Attribution 4.0",
    "path": "https://creativecommons.org/licenses/by/4.0/",
}
DESCRIPTOR = "datapackage.json"
_ARTICLE_CODES = f"{', '.join(ARTICLES)} (the Criminal Code article) or all_refusal (the three together)"


@dataclass(frozen=True)
class Field:
    name: str  # the published column
    source: str  # the fit table's column it is copied from
    type: str  # Table Schema type: string, number, integer, boolean, date, yearmonth, year
    description: str
    unit: str = ""  # the unit of a number, stated in the schema as well as in the name


@dataclass(frozen=True)
class Table:
    name: str  # resource name and CSV file stem
    source: str  # the fit table it is made from
    title: str
    description: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...] = ()


def _cases(prefix: str, what: str) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}cases_expected", "expected", "number", f"{what}: expected number of cases", "cases"),
        Field(
            f"{prefix}cases_lower_80",
            "lower_80",
            "number",
            f"{what}: lower end of the 80% prediction interval",
            "cases",
        ),
        Field(
            f"{prefix}cases_upper_80",
            "upper_80",
            "number",
            f"{what}: upper end of the 80% prediction interval",
            "cases",
        ),
        Field(
            f"{prefix}cases_lower_95",
            "lower_95",
            "number",
            f"{what}: lower end of the 95% prediction interval",
            "cases",
        ),
        Field(
            f"{prefix}cases_upper_95",
            "upper_95",
            "number",
            f"{what}: upper end of the 95% prediction interval",
            "cases",
        ),
    )


ARTICLE = Field("article", "article", "string", f"Which cases: {_ARTICLE_CODES}")

MONTHLY = Table(
    "monthly_filings",
    "monthly_filings",
    "Cases received by military courts, per month",
    "Modelled number of cases received by Russia's military courts each month, per article and for the three "
    "together, with 80% and 95% prediction intervals. Months after the last published figure are a forecast.",
    (
        ARTICLE,
        Field("month", "month", "yearmonth", "Calendar month, YYYY-MM"),
        *_cases("", "Cases received in the month"),
        Field(
            "has_published_month",
            "has_published_month",
            "boolean",
            "Whether a figure was published for this article and exactly this month",
        ),
        Field(
            "is_provisional",
            "is_provisional",
            "boolean",
            "Whether the month is reached only by the figures of a single release published soon after it "
            "(a nowcast no later release has checked; see the methods report)",
        ),
        Field("is_forecast", "is_forecast", "boolean", "Whether the month lies after the data (a forecast)"),
    ),
    ("article", "month"),
)

YEARLY = Table(
    "yearly_totals",
    "yearly_totals",
    "Cases received by military courts, per year",
    "Cases received per calendar year: the expected total is the sum of the year's rows of the monthly table; "
    "the prediction intervals are those of the year's total (not sums of monthly intervals).",
    (
        ARTICLE,
        Field("year", "year", "year", "Calendar year"),
        Field("months_modelled", "months", "integer", "Months of the year in the model's range", "months"),
        Field("months_forecast", "forecast_months", "integer", "Of those, months after the data (forecast)", "months"),
        *_cases("", "Cases received in the year"),
    ),
    ("article", "year"),
)

EFFECTS = Table(
    "effects",
    "effects",
    "Effects of the mobilisation break",
    "How cases changed at the September 2022 mobilisation and after, with 95% intervals and how each was made. "
    "Rows mix units; the unit column says which.",
    (
        ARTICLE,
        Field("effect", "effect", "string", "What is estimated"),
        Field(
            "estimate", "estimate", "number", "Point estimate (median of the draws unless the method says otherwise)"
        ),
        Field("lower_95", "lower_95", "number", "Lower end of the 95% interval, in the row's unit"),
        Field("upper_95", "upper_95", "number", "Upper end of the 95% interval, in the row's unit"),
        Field("unit", "unit", "string", "Unit of estimate and interval"),
        Field("method", "method", "string", "How the estimate and its interval were made"),
        Field(
            "posterior_sd_to_prior_sd",
            "posterior_sd_to_prior_sd",
            "number",
            "Identification check: the effect's standard deviation after fitting over its standard deviation under "
            "the priors and penalties alone (near 1: the figures said nothing); empty where not a parameter "
            "combination",
        ),
        Field(
            "is_estimable",
            "is_estimable",
            "boolean",
            f"False when the effect fails the identification rule (sd ratio above {MAX_POSTERIOR_TO_PRIOR_SD:g}, or a "
            f"95% interval spanning more than a factor of {MAX_INTERVAL_FACTOR:g}): the reports then say it cannot "
            "be estimated rather than print it",
        ),
        Field("not_estimable_because", "not_estimable_because", "string", "Why, when the effect is not estimable"),
    ),
)

FIGURES = Table(
    "fit_to_ledger",
    "fit_to_ledger",
    "Every published figure against the model",
    "Each court-filing figure of the ledger: whether the model used it (and why not), what the model expects "
    "for its period, and how far the published value is from that.",
    (
        Field("figure_id", "figure_id", "string", "The figure's id in the ledger of published figures"),
        ARTICLE,
        Field("measure", "measure", "string", "count (a period) or cumulative (a running total)"),
        Field("period_start", "period_start", "date", "First day the figure counts"),
        Field("period_end", "period_end", "date", "Last day the figure counts"),
        Field("published_cases", "value", "number", "The number as published", "cases"),
        Field("value_qualifier", "value_qualifier", "string", "exact, approx (about), at_least or at_most"),
        Field("source_date", "source_date", "date", "When it was published"),
        Field("is_used", "is_used", "boolean", "Whether the model was fitted to it"),
        Field("usage", "usage", "string", "How it entered the model, or that it was set aside"),
        Field("reason", "reason", "string", "Why it was set aside or how its date was assumed"),
        Field("later_figure_id", "later_figure_id", "string", "For an earlier vintage: the later figure of the period"),
        Field(
            "cases_expected_as_published",
            "expected_as_published",
            "number",
            "What the model expects the release to have counted (with its reporting lag)",
            "cases",
        ),
        Field(
            "cases_fitted_complete",
            "fitted_complete",
            "number",
            "What the model expects once every case is posted, in the figure's counting base",
            "cases",
        ),
        Field("cases_lower_95", "lower_95", "number", "Lower end of the 95% prediction interval of that", "cases"),
        Field("cases_upper_95", "upper_95", "number", "Upper end of the 95% prediction interval of that", "cases"),
        Field("is_inside_95", "is_inside_95", "boolean", "Whether the published value lies inside that interval"),
        Field(
            "standardised_residual",
            "standardised_residual",
            "number",
            "Published minus expected, over its standard deviation",
            "standard deviations",
        ),
        Field("conflicts", "conflicts", "string", "Contradictions with other figures this one is part of"),
    ),
    ("figure_id",),
)

FIT_TABLES = (MONTHLY, YEARLY, EFFECTS, FIGURES)

MODEL_SELECTION = Table(
    "model_selection",
    "model_selection",
    "Choice of the smoothing penalty",
    "The penalty on the slope changes after the break, tried over a grid; the chosen one has the largest "
    "Laplace-approximate marginal likelihood.",
    (
        Field("penalty", "penalty", "number", "Strength of the penalty on slope changes"),
        Field("loglik", "loglik", "number", "Log-likelihood of the published figures at the optimum"),
        Field("effective_df", "effective_df", "number", "Effective number of parameters"),
        Field("aic", "aic", "number", "Akaike information criterion with the effective parameters (shown, not used)"),
        Field(
            "log_marginal_likelihood",
            "log_marginal_likelihood",
            "number",
            "Laplace-approximate log marginal likelihood",
        ),
        Field("converged", "converged", "boolean", "Whether the optimiser's gradient vanished"),
        Field("iterations", "iterations", "integer", "Optimiser iterations"),
        Field("gradient_norm", "gradient_norm", "number", "Largest absolute gradient at the optimum"),
        Field("min_hessian_eigenvalue", "min_hessian_eigenvalue", "number", "Smallest eigenvalue of the curvature"),
        Field("is_chosen", "is_chosen", "boolean", "Whether this penalty was used"),
    ),
)

BREAK_PROFILE = Table(
    "break_profile",
    "break_profile",
    "When did cases break? Profile over candidate months",
    "The model refitted with its break at each candidate month; months within 1.92 of the best penalised "
    "log-likelihood form the 95% likelihood-ratio set.",
    (
        Field("break_month", "break_month", "yearmonth", "Candidate first month after the break"),
        Field("penalised_loglik", "penalised_loglik", "number", "Penalised log-likelihood of the refit"),
        Field("converged", "converged", "boolean", "Whether the refit converged"),
        Field("drop_from_best", "drop_from_best", "number", "How far below the best candidate"),
        Field("is_in_95_interval", "is_in_95_interval", "boolean", "Whether the month is in the 95% set"),
    ),
    ("break_month",),
)

ALTERNATIVES = Table(
    "alternatives",
    "alternatives",
    "The break re-estimated by other methods",
    "The headline effects of the composite-link model beside a segmented negative binomial GLM on "
    "reconstructed months (Rubin's rules) and a structural time series.",
    (
        Field("estimator", "estimator", "string", "Which estimator"),
        ARTICLE,
        Field("effect", "effect", "string", "What is estimated"),
        Field("estimate", "estimate", "number", "Point estimate"),
        Field("lower_95", "lower_95", "number", "Lower end of the 95% interval"),
        Field("upper_95", "upper_95", "number", "Upper end of the 95% interval"),
        Field("method", "method", "string", "How it was made"),
    ),
)

POSTERIOR_CHECK = Table(
    "posterior_check",
    "posterior_intervals",
    "The reports' 95% intervals against the full posterior",
    "Each effect, full year's total and sampled month twice: from the normal (Laplace) approximation the "
    "reports use, and from the full posterior of the same model sampled by NUTS (4 chains). Widths and shifts "
    "of rate ratios are on the log scale, all others on the scale of the quantity.",
    (
        Field("kind", "kind", "string", "effect, yearly total or month"),
        ARTICLE,
        Field("quantity", "quantity", "string", "What is estimated"),
        Field("laplace_estimate", "estimate_laplace", "number", "Estimate from the approximation"),
        Field("laplace_lower_95", "lower_95_laplace", "number", "Lower end of its 95% interval"),
        Field("laplace_upper_95", "upper_95_laplace", "number", "Upper end of its 95% interval"),
        Field("posterior_estimate", "estimate_posterior", "number", "Estimate from the sampled posterior"),
        Field("posterior_lower_95", "lower_95_posterior", "number", "Lower end of its 95% interval"),
        Field("posterior_upper_95", "upper_95_posterior", "number", "Upper end of its 95% interval"),
        Field("width_ratio", "width_ratio", "number", "Width of the sampled interval over the approximation's"),
        Field(
            "lower_shift_in_widths",
            "lower_shift_in_widths",
            "number",
            "How far the lower end moved, in widths of the approximation's interval",
        ),
        Field(
            "upper_shift_in_widths",
            "upper_shift_in_widths",
            "number",
            "How far the upper end moved, in widths of the approximation's interval",
        ),
        Field(
            "lower_shift_se",
            "lower_shift_se",
            "number",
            "Monte Carlo standard error of the lower end's shift (batch means of both samples), in the same widths",
        ),
        Field(
            "upper_shift_se",
            "upper_shift_se",
            "number",
            "Monte Carlo standard error of the upper end's shift, in the same widths",
        ),
        Field(
            "verdict",
            "verdict",
            "string",
            "agrees: both ends within a tenth of the approximation's width, even two standard errors away; "
            "differs: an end beyond a tenth by more than two standard errors; too close to call: neither",
        ),
    ),
)


def _share(prefix: str, what: str) -> tuple[Field, ...]:
    return (
        Field(prefix, prefix, "number", what, "share"),
        Field(f"{prefix}_lower_95", f"{prefix}_lower_95", "number", f"{what}: lower end of the 95% interval", "share"),
        Field(f"{prefix}_upper_95", f"{prefix}_upper_95", "number", f"{what}: upper end of the 95% interval", "share"),
    )


RELEASE_COMPLETENESS = Table(
    "release_completeness",
    "release_completeness",
    "How complete each release was when published",
    "For each release of the figures the model uses: the share of the cases received in the last 30 days it "
    "counts that courts had already posted, under the model's reporting lag (one for all releases). For a "
    "release whose figures were published again later, also the share it had actually shown (its figures over "
    "the later ones), the share the model expects for the same pairs, and the release's own lag estimated from "
    "those pairs alone under a prior that allows weeks (median about 7 days, 95% from 1 to 50).",
    (
        Field("release_date", "release_date", "date", "Publication date of the release (assumed when unknown)"),
        Field("is_date_known", "is_date_known", "boolean", "Whether the publication date is known"),
        Field("figures", "figures", "integer", "Figures of this release the model uses"),
        Field("last_day_counted", "last_day_counted", "date", "The latest day any of its figures counts"),
        Field("days_after_last_day", "days_after_last_day", "integer", "Days from that day to the release", "days"),
        *_share("share_posted", "Share of the last 30 days' cases already posted, under the model's lag"),
        Field("revised_pairs", "revised_pairs", "integer", "Its figures published again for the same period later"),
        Field("later_release_date", "later_release_date", "string", "When they were published again"),
        Field("cases_first_published", "cases_first_published", "number", "Those figures as first published", "cases"),
        Field("cases_published_later", "cases_published_later", "number", "The same figures published later", "cases"),
        *_share("observed_share_of_later", "First published over later, pooled (exact binomial interval)"),
        Field(
            "expected_share_of_later",
            "expected_share_of_later",
            "number",
            "The same share as the fitted model expects it (reporting lag and the windows' own days)",
            "share",
        ),
        Field("own_lag_days", "own_lag_days", "number", "The release's own lag from its pairs alone", "days"),
        Field("own_lag_lower_95", "own_lag_lower_95", "number", "Lower end of its 95% interval", "days"),
        Field("own_lag_upper_95", "own_lag_upper_95", "number", "Upper end of its 95% interval", "days"),
        *_share("own_share_posted", "Share of the last 30 days' cases already posted, under its own lag"),
    ),
    ("release_date",),
)

MAIN_TABLES = (*FIT_TABLES, MODEL_SELECTION, BREAK_PROFILE, ALTERNATIVES, POSTERIOR_CHECK, RELEASE_COMPLETENESS)

CROSS_CHECK = Table(
    "cross_check",
    "cross_check",
    "The all-articles cross-check",
    "Each figure published for the three articles together against the 95% predictive interval of the model "
    "refitted without any such figure, as the release would have counted (reporting lag, counting base).",
    (
        Field("figure_id", "figure_id", "string", "The figure's id in the ledger"),
        Field("period_start", "period_start", "date", "First day the figure counts"),
        Field("period_end", "period_end", "date", "Last day the figure counts"),
        Field("published_cases", "value", "number", "The number as published", "cases"),
        Field("value_qualifier", "value_qualifier", "string", "exact, approx, at_least or at_most"),
        Field("cases_predicted_median", "predicted_median", "number", "Median of the prediction", "cases"),
        Field("cases_lower_95", "lower_95", "number", "Lower end of the 95% predictive interval", "cases"),
        Field("cases_upper_95", "upper_95", "number", "Upper end of the 95% predictive interval", "cases"),
        Field(
            "share_meeting_bound",
            "bound_met_share",
            "number",
            "For a bound: the share of the prediction that meets it (empty for a point figure)",
        ),
        Field(
            "verdict",
            "verdict",
            "string",
            "consistent, in tension (a bound met with less than even odds) or inconsistent",
        ),
        Field("is_covered", "is_covered", "boolean", "Whether the published value is consistent with the prediction"),
    ),
    ("figure_id",),
)

LEDGER = Table(
    "published_figures",
    "ledger",
    "The ledger of published figures",
    "Every published number on prosecutions for refusing to fight that the reports rest on, one row each, with "
    "its period, qualifier, source and a verbatim quote. Nothing in it is estimated.",
    (
        Field("figure_id", "figure_id", "string", "The figure's id"),
        Field(
            "series",
            "series",
            "string",
            "What is counted: court_filings (cases received by military courts), "
            "court_verdicts, convictions_official, criminal_cases_opened, help_requests or other",
        ),
        Field("article", "article", "string", f"{_ARTICLE_CODES}, or na"),
        Field("measure", "measure", "string", "count, cumulative, a rate, a share, persons or help given"),
        Field("period_start", "period_start", "date", "First day counted (empty if not published)"),
        Field("period_end", "period_end", "date", "Last day counted (empty if not published)"),
        Field("value", "value", "number", "The number as published; its unit follows from series and measure"),
        Field("value_qualifier", "value_qualifier", "string", "exact, approx, at_least or at_most"),
        Field("source_publisher", "source_publisher", "string", "Who published it"),
        Field("source_title", "source_title", "string", "Title of the publication"),
        Field("source_url", "source_url", "string", "Where it was published"),
        Field("source_date", "source_date", "date", "When it was published"),
        Field("quote", "quote", "string", "The sentence it was taken from, verbatim"),
        Field("notes", "notes", "string", "Remarks of the ledger's keepers"),
    ),
    ("figure_id",),
)

CONTRADICTIONS = Table(
    "contradictions",
    "conflicts",
    "Figures that cannot all hold",
    "Sets of court-filing figures that contradict each other on one counting base, with the size of the "
    "contradiction; they are kept and shown, never averaged away.",
    (
        Field(
            "kind",
            "kind",
            "string",
            "parts_exceed_whole, same_period_disagreement, downward_revision or within_release_disagreement (a "
            "release's running total against its own period totals plus earlier figures for the remaining days)",
        ),
        ARTICLE,
        Field("whole_figure_id", "whole_figure_id", "string", "The figure contradicted"),
        Field("part_figure_ids", "part_figure_ids", "string", "The figures that contradict it, comma-separated"),
        Field("whole_cases", "whole_value", "number", "The contradicted figure's value", "cases"),
        Field("parts_cases", "parts_total", "number", "What the others add up to", "cases"),
        Field("excess_cases", "excess", "number", "By how much they exceed it", "cases"),
        Field("description", "description", "string", "The contradiction in words"),
        Field("release_date", "release_date", "string", "For a release that contradicts itself: its publication date"),
    ),
)


@dataclass(frozen=True)
class DataPackage:
    """What a report publishes beside itself: named tables and where their numbers come from."""

    name: str
    title: str
    description: str
    tables: tuple[tuple[Table, pd.DataFrame], ...]
    sources: tuple[dict, ...] = ()

    def write(self, directory: Path, created: str = "") -> list[Path]:
        return write_data_package(
            directory, self.name, self.title, self.description, list(self.tables), list(self.sources), created
        )


# The unit of each kind of effect row, by how its name starts.
_EFFECT_UNITS = (
    ("level rate ratio", "ratio"),
    ("monthly growth", "percent per month"),
    ("excess cases", "cases"),
    ("correlation", "correlation coefficient"),
    ("share of cases", "share (0 to 1)"),
    ("break month", "months after the first modelled month"),
    ("change in monthly growth", "percentage points"),
)


def effect_unit(effect: str) -> str:
    for start, unit in _EFFECT_UNITS:
        if effect.startswith(start):
            return unit
    raise ValueError(f"no unit known for the effect {effect!r}: add it to products.public._EFFECT_UNITS")


def public_frame(table: Table, fit_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The published columns of `table`, renamed from the fit's own table (dates as YYYY-MM-DD)."""
    source = fit_tables[table.source].copy()
    for field in table.fields:
        if field.type == "date" and pd.api.types.is_datetime64_any_dtype(source[field.source]):
            source[field.source] = source[field.source].dt.strftime("%Y-%m-%d")
    if table is EFFECTS:
        source["unit"] = source["effect"].map(effect_unit)
    return pd.DataFrame({f.name: source[f.source].to_numpy() for f in table.fields})


def _field(field: Field) -> dict:
    described = {"name": field.name, "type": field.type, "description": field.description}
    if field.type == "yearmonth":
        described["format"] = "default"
    if field.unit:
        described["unit"] = field.unit
    return described


def _resource(table: Table, path: str) -> dict:
    schema = {"fields": [_field(f) for f in table.fields], "missingValues": [""]}
    if table.primary_key:
        schema["primaryKey"] = list(table.primary_key)
    return {
        "name": table.name.replace("_", "-"),
        "path": path,
        "profile": "tabular-data-resource",
        "title": table.title,
        "description": table.description,
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": schema,
    }


def sources_of(ledger: pd.DataFrame) -> list[dict]:
    """Each publication the figures come from, once (Data Package `sources`)."""
    seen, sources = set(), []
    for row in ledger.sort_values(["source_date", "source_publisher"], na_position="last").itertuples():
        key = (row.source_publisher, row.source_title, row.source_url)
        if key in seen:
            continue
        seen.add(key)
        source = {"title": f"{row.source_publisher}: {row.source_title}".strip(": ")}
        if isinstance(row.source_url, str) and row.source_url:
            source["path"] = row.source_url
        sources.append(source)
    return sources


def write_data_package(
    directory: Path,
    name: str,
    title: str,
    description: str,
    tables: list[tuple[Table, pd.DataFrame]],
    sources: list[dict],
    created: str = "",
) -> list[Path]:
    """CSV files and their datapackage.json in `directory`, all renamed into place together with
    the descriptor last. Returns the files written."""
    written = write_csv_tables({f"{table.name}.csv": frame for table, frame in tables}, directory)
    package = {
        "profile": "tabular-data-package",
        "name": re.sub(r"[^a-z0-9._-]+", "-", name.lower()),
        "title": title,
        "description": description,
        "licenses": [LICENCE],
        "sources": sources,
        "contributors": [{"title": "milcourts research notebooks", "role": "author"}],
        "keywords": ["Russia", "military courts", "AWOL", "desertion", "mobilisation"],
        "resources": [_resource(table, f"{table.name}.csv") for table, _ in tables],
    }
    if created:
        package["created"] = created
    descriptor = directory / DESCRIPTOR
    write_text_atomically(descriptor, json.dumps(package, indent=2, ensure_ascii=False) + "\n")
    return [*written, descriptor]
