"""milcourts: prosecutions of Russian soldiers who refuse to fight, from published figures to reports.

Commands follow the river: check a ledger, fit the model (the fit stage), build the reports,
validate the model, predict a window. Relative paths are read from the current directory, like
any command; the defaults are the project's own files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from milcourts import __version__, paths

# `validate`'s simulation replicates per scenario and processes, also when the build runs it
# (--validate-if-stale)
VALIDATION_REPLICATES = 200
VALIDATION_WORKERS = 2


def _path(text: str) -> Path:
    """Every path argument: relative to the current directory, made absolute once."""
    return Path(text).expanduser().resolve()


def _validate_ledger(args: argparse.Namespace) -> int:
    from milcourts.inputs.ledger import check_ledger, summarise_ledger

    frame, issues = check_ledger(args.path)
    if issues:
        print(f"{args.path}: INVALID, {len(issues)} problem(s):", file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    print(summarise_ledger(frame, args.path))
    return 0


def _record_provenance(args: argparse.Namespace) -> int:
    from milcourts.inputs.provenance import ProvenanceError, write_record

    try:
        record = write_record(args.path, args.copied_from, args.description)
    except (ProvenanceError, OSError) as exc:
        print(f"record-provenance failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {record}")
    return 0


def _settings(args: argparse.Namespace):
    from milcourts.build.incremental import BuildSettings

    settings = BuildSettings(jobs=args.jobs)
    if getattr(args, "run_file", None):
        settings = replace(settings, run_file=args.run_file)
    return settings


def _build(args: argparse.Namespace) -> int:
    from milcourts.build.incremental import plan
    from milcourts.build.runfile import RunFileError

    if args.jobs < 1 or args.timeout <= 0:
        print("build: --jobs must be at least 1 and --timeout positive", file=sys.stderr)
        return 2
    settings = replace(_settings(args), make_pdf=not args.no_pdf, force=args.force, run_timeout_seconds=args.timeout)
    if args.reports_dir:
        settings = replace(settings, reports_dir=args.reports_dir)
    if args.validate_if_stale:
        from milcourts.build.incremental import validation_is_stale

        if validation_is_stale(settings.ledger_csv, settings.processed_dir):
            print(
                "validating the model first (no results yet, or older than the ledger or the package)", file=sys.stderr
            )
            status = _run_validation(settings.ledger_csv)
            if status:
                return status
    try:
        _, keys, stale, published = plan(settings, args.only)
    except (RunFileError, OSError) as exc:
        print(f"build failed; reports/ left as it was.\n{exc}", file=sys.stderr)
        return 1
    if not stale:  # answered without importing papermill, nbconvert or pandas
        for name in keys:
            print(f"{name}: up to date (inputs unchanged since {published[name]['built_at']})", file=sys.stderr)
        print("nothing to build; reports/ unchanged", file=sys.stderr)
        return 0

    from milcourts.build.execute import BuildError
    from milcourts.build.pipeline import BuildInterrupted, build
    from milcourts.build.render import RenderError
    from milcourts.inputs.ledger import LedgerValidationError
    from milcourts.inputs.provenance import ProvenanceError
    from milcourts.model.spec import ModelRangeError
    from milcourts.products.needs import ReportParameterError

    try:
        build(only=args.only, settings=settings)
    except BuildInterrupted as exc:
        print(exc, file=sys.stderr)
        return 128 + exc.signum  # as a shell reports a process ended by that signal
    except (
        BuildError,
        LedgerValidationError,
        ProvenanceError,
        RenderError,
        RunFileError,
        ModelRangeError,
        ReportParameterError,
    ) as exc:
        print(f"build failed; reports/ left as it was.\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build interrupted; reports/ left as it was.", file=sys.stderr)
        return 130
    return 0


def _fit(args: argparse.Namespace) -> int:
    from milcourts.build.execute import BuildError
    from milcourts.build.pipeline import run_fit_stage
    from milcourts.build.runfile import RunFileError
    from milcourts.inputs.ledger import LedgerValidationError
    from milcourts.inputs.provenance import ProvenanceError

    if args.jobs < 1:
        print("fit: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        run_fit_stage(_settings(args), only=args.only)
    except (BuildError, LedgerValidationError, ProvenanceError, RunFileError, ValueError) as exc:
        print(f"fit failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"the main fit's tables are in {paths.processed_dir()}; every fit's products in "
        f"{paths.processed_dir() / 'fits'}",
        file=sys.stderr,
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from milcourts.inputs.constraints import build_constraint_view
    from milcourts.inputs.ledger import LedgerValidationError, load_ledger
    from milcourts.model.simulate import predict_total
    from milcourts.model.spec import check_month_range
    from milcourts.products.needs import main_request
    from milcourts.products.stage import load_or_fit

    def to_stderr(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        request = main_request(load_ledger(args.ledger), train_end=args.train_end or "")
        view = build_constraint_view(request.ledger)
        if len(view.months):  # extend the forecast so that the window can be predicted
            needed = (pd.Timestamp(args.end).to_period("M") - view.months[-1]).n
            spec = replace(request.spec, forecast_months=max(request.spec.forecast_months, needed))
            check_month_range(view.figures, view.months, spec.forecast_months)  # before any fit
            request = replace(request, spec=spec)
        (products,) = load_or_fit([request], say=to_stderr)
        result = predict_total(products.draws, args.article, args.start, args.end)
    except (LedgerValidationError, ValueError) as exc:
        print(f"predict failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _validate(args: argparse.Namespace) -> int:
    return _run_validation(args.ledger, args.replicates, args.workers)


def _run_validation(
    ledger_csv: Path, replicates: int = VALIDATION_REPLICATES, workers: int = VALIDATION_WORKERS
) -> int:
    from milcourts.atomic import write_csv_tables
    from milcourts.checks.validation import VALIDATION_FILES, run_validation, validation_inputs
    from milcourts.inputs.ledger import LedgerValidationError, load_ledger
    from milcourts.model.runtime import model_numerics

    try:
        ledger = load_ledger(ledger_csv)
    except LedgerValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    with model_numerics():
        outputs = run_validation(ledger, replicates=replicates, workers=workers)
    # which ledger the results belong to: reports show them only for that exact file
    outputs["inputs"] = validation_inputs(ledger_csv, replicates)
    named = {VALIDATION_FILES[name]: frame for name, frame in outputs.items()}
    for path in write_csv_tables(named, paths.processed_dir(), float_format="%.6g"):
        print(f"wrote {path}")
    for name in ("rolling_origin_summary", "forecast_scores", "simulation_summary"):
        print(outputs[name].to_string(index=False))
    print(
        f"leave-one-out coverage: {outputs['leave_one_out']['is_covered'].mean():.2f} "
        f"of {len(outputs['leave_one_out'])} figures"
    )
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown where there is one (not for required options, flags or unset values)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    defaults = _Help
    parser = argparse.ArgumentParser(
        prog="python -m milcourts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"milcourts {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser(
        "validate-ledger",
        formatter_class=defaults,
        help="check a ledger CSV; exit 1 listing every problem",
        description="Check a ledger of published figures: every problem as FILE:LINE [ID]: column: expected, found.",
    )
    command.add_argument("path", type=_path, help="the ledger CSV, e.g. data/raw/published_figures.csv")
    command.set_defaults(handler=_validate_ledger)

    command = commands.add_parser(
        "record-provenance",
        formatter_class=defaults,
        help="write the provenance record of a new raw file (a new ledger vintage)",
        description="Record a new raw file's checksum and origin beside it (NAME.provenance.yml). Raw files and "
        "their records are never edited in place; an existing record is never replaced.",
    )
    command.add_argument("path", type=_path, help="the raw file, e.g. data/raw/published_figures_2027-01.csv")
    command.add_argument("--copied-from", required=True, help="where the file came from")
    command.add_argument("--description", required=True, help="what the file holds")
    command.set_defaults(handler=_record_provenance)

    command = commands.add_parser(
        "fit",
        formatter_class=defaults,
        help="the fit stage: fit every model the reports need (`make model`)",
        description="Fit, once each, every model specification the runs in the run file need, and the main "
        "fit with the model's checks. Products go to data/processed/fits/<name>-<key>/, the main "
        "fit's tables to data/processed/. Fits already stored for this code are kept.",
    )
    command.add_argument("--only", action="append", metavar="NAME", help="only the fits of this run (repeatable)")
    command.add_argument("--run-file", type=_path, default=paths.RUN_FILE, help="the run file")
    command.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="fits run one at a time; the main fit's posterior check shares its chains among N processes "
        "(at least two)",
    )
    command.set_defaults(handler=_fit)

    command = commands.add_parser(
        "build",
        formatter_class=defaults,
        help="fit what is needed, then execute and render the reports",
        description="Build every run in the run file into reports/ (HTML, PDF, executed notebook, data), all "
        "or nothing. Runs whose inputs are unchanged since they were published are not rebuilt.",
    )
    command.add_argument("--only", action="append", metavar="NAME", help="build only this run (repeatable)")
    command.add_argument("--run-file", type=_path, default=paths.RUN_FILE, help="the run file")
    command.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs executed at once, each in its own process; fits run one at a time, the main fit's posterior "
        "check among N processes (at least two)",
    )
    command.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="time limit per run; a run that exceeds it fails the build, naming the run",
    )
    command.add_argument("--reports-dir", type=_path, metavar="DIR", help="publish into DIR instead of reports/")
    command.add_argument("--force", action="store_true", help="rebuild every selected run, even unchanged ones")
    command.add_argument("--no-pdf", action="store_true", help="HTML only, for quick drafts")
    command.add_argument(
        "--validate-if-stale",
        action="store_true",
        help="first run `validate` in this process if its results are missing, older than the ledger or the "
        "package, or for another ledger: the fit stage then reuses the likelihood the validation compiled",
    )
    command.set_defaults(handler=_build)

    command = commands.add_parser(
        "predict",
        formatter_class=defaults,
        help="total cases received in a window, as JSON with intervals",
        description="Expected total of cases received in [start, end] (partial months by days), with 80% and "
        "95% prediction intervals, from the main fit (stored, or fitted if there is none).",
    )
    command.add_argument("--article", required=True, choices=["337", "338", "332", "all_refusal"])
    command.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    command.add_argument("--end", required=True, help="last day, YYYY-MM-DD (inclusive)")
    command.add_argument("--train-end", help="fit only on figures published on or before this date")
    command.add_argument("--ledger", type=_path, default=paths.LEDGER_CSV, help="ledger CSV")
    command.set_defaults(handler=_predict)

    command = commands.add_parser(
        "validate",
        formatter_class=defaults,
        help="leave-one-out, rolling origin and simulation checks",
        description="Score the model on figures it did not see and on simulated ledgers; writes "
        "data/processed/validation_*.csv, which the reports show for this very ledger.",
    )
    command.add_argument("--ledger", type=_path, default=paths.LEDGER_CSV, help="ledger CSV")
    command.add_argument(
        "--replicates", type=int, default=VALIDATION_REPLICATES, help="simulation replicates per scenario"
    )
    command.add_argument(
        "--workers", type=int, default=VALIDATION_WORKERS, help="processes in all (this one included) for the checks"
    )
    command.set_defaults(handler=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
