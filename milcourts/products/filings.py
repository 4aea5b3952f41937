"""From the ledger to the modelled monthly filings and the files others read in data/processed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from milcourts import paths
from milcourts.checks.alternatives import comparison_table
from milcourts.build.atomic import replace_all, temporary_sibling
from milcourts.checks.breakdate import break_effect_rows, profile_break_month, ruptures_break_month
from milcourts.inputs.constraints import build_constraint_view
from milcourts.products.cache import fit_and_simulate
from milcourts.inputs.ledger import load_ledger
from milcourts.model.fit import FittedModel
from milcourts.model.simulate import Draws
from milcourts.model.spec import check_month_range, ModelSpec
from milcourts.model.tables import effects_table, fit_to_ledger_table, monthly_filings_table

OUTPUT_FILES = {
    "monthly_filings": "monthly_filings.csv",
    "effects": "effects.csv",
    "fit_to_ledger": "fit_to_ledger.csv",
    "model_selection": "model_selection.csv",
    "break_profile": "break_profile.csv",
    "alternatives": "alternatives.csv",
}


@dataclass
class FilingsFit:
    fitted: FittedModel
    draws: Draws
    break_profile: pd.DataFrame | None = None
    ruptures_month: str | None = None


def published_by(ledger: pd.DataFrame, train_end: str | pd.Timestamp) -> pd.DataFrame:
    """What was known on `train_end`: figures published by then whose period had ended by then.

    A figure with no publication date counts as published at its period end (the earliest it can
    have been), so it is kept only if that is on or before `train_end`.
    """
    moment = pd.Timestamp(train_end)
    published = ledger["source_date"].fillna(ledger["period_end"])
    return ledger[(published <= moment) & (ledger["period_end"] <= moment)].reset_index(drop=True)


def fit_from_ledger(ledger_csv: str | Path = paths.LEDGER_CSV, spec: ModelSpec = ModelSpec(),
                    train_end: str | None = None, through: str | None = None,
                    with_break_profile: bool = False) -> FilingsFit:
    """Fit the joint model to the court-filing figures of a ledger and simulate from it.

    `through` (YYYY-MM-DD) extends the forecast horizon so that a window ending then can be predicted.
    """
    ledger = load_ledger(paths.resolve(ledger_csv))
    if train_end is not None:
        ledger = published_by(ledger, train_end)
    view = build_constraint_view(ledger)
    if through is not None and len(view.months):
        needed = (pd.Timestamp(through).to_period("M") - view.months[-1]).n
        spec = replace(spec, forecast_months=max(spec.forecast_months, needed))
        check_month_range(view.figures, view.months, spec.forecast_months)  # before any fit
    fitted, draws = fit_and_simulate(ledger, spec)  # shared with other reports of the same build
    fit = FilingsFit(fitted, draws)
    if with_break_profile:
        fit.break_profile = profile_break_month(view, spec, fitted.penalty)
        fit.ruptures_month = ruptures_break_month(fit.draws)
    return fit


def model_outputs(fit: FilingsFit) -> dict[str, pd.DataFrame]:
    effects = effects_table(fit.fitted, fit.draws)
    outputs = {
        "monthly_filings": monthly_filings_table(fit.fitted, fit.draws),
        "effects": effects,
        "fit_to_ledger": fit_to_ledger_table(fit.fitted, fit.draws),
        "model_selection": fit.fitted.selection,
        "alternatives": comparison_table(fit.fitted, fit.draws, effects),
    }
    if fit.break_profile is not None:
        rows = pd.DataFrame(break_effect_rows(fit.break_profile, fit.ruptures_month, fit.fitted),
                            columns=effects.columns)
        outputs["effects"] = pd.concat([effects, rows], ignore_index=True)
        outputs["break_profile"] = fit.break_profile
    return outputs


def write_model_outputs(outputs: dict[str, pd.DataFrame], directory: Path = paths.PROCESSED_DATA_DIR,
                        file_names: dict[str, str] = OUTPUT_FILES) -> list[Path]:
    """Write every output to a temporary sibling first, then rename them all together."""
    directory.mkdir(parents=True, exist_ok=True)
    pairs = []
    try:
        for name, frame in outputs.items():
            final = directory / file_names[name]
            temporary = temporary_sibling(final)
            frame.to_csv(temporary, index=False, float_format="%.6g")
            temporary.chmod(0o644)
            pairs.append((temporary, final))
        replace_all(pairs)
    finally:
        for temporary, _ in pairs:
            temporary.unlink(missing_ok=True)
    return [final for _, final in pairs]
