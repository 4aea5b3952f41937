"""Command line: validate-ledger, build, fit, predict and validate (`python -m milcourts --help`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


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


def _build(args: argparse.Namespace) -> int:
    from milcourts.build.incremental import BuildSettings, plan
    from milcourts.build.runfile import RunFileError

    if args.jobs < 1 or args.timeout <= 0:
        print("build: --jobs must be at least 1 and --timeout positive", file=sys.stderr)
        return 2
    settings = BuildSettings(make_pdf=not args.no_pdf, force=args.force, jobs=args.jobs,
                             run_timeout_seconds=args.timeout)
    if args.run_file:
        settings = replace(settings, run_file=Path(args.run_file).resolve())
    if args.reports_dir:
        settings = replace(settings, reports_dir=Path(args.reports_dir).resolve())
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
    from milcourts.inputs.ledger import LedgerValidationError
    from milcourts.inputs.provenance import ProvenanceError
    from milcourts.build.render import RenderError

    try:
        build(only=args.only, settings=settings)
    except BuildInterrupted as exc:
        print(exc, file=sys.stderr)
        return 128 + exc.signum  # as a shell reports a process ended by that signal
    except (BuildError, LedgerValidationError, ProvenanceError, RenderError, RunFileError) as exc:
        print(f"build failed; reports/ left as it was.\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build interrupted; reports/ left as it was.", file=sys.stderr)
        return 130
    return 0


def _record_provenance(args: argparse.Namespace) -> int:
    from milcourts.inputs.provenance import ProvenanceError, write_record

    try:
        record = write_record(Path(args.path), args.copied_from, args.description)
    except (ProvenanceError, OSError) as exc:
        print(f"record-provenance failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {record}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from milcourts.products.filings import fit_from_ledger, model_outputs, write_model_outputs
    from milcourts.inputs.ledger import LedgerValidationError

    try:
        fit = fit_from_ledger(args.ledger, with_break_profile=True)
    except LedgerValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in write_model_outputs(model_outputs(fit)):
        print(f"wrote {path}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from milcourts.products.filings import fit_from_ledger
    from milcourts.inputs.ledger import LedgerValidationError
    from milcourts.model.simulate import predict_total

    try:
        fit = fit_from_ledger(args.ledger, train_end=args.train_end, through=args.end)
        result = predict_total(fit.draws, args.article, args.start, args.end)
    except (LedgerValidationError, ValueError) as exc:
        print(f"predict failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from milcourts import paths
    from milcourts.products.filings import write_model_outputs
    from milcourts.inputs.ledger import LedgerValidationError, load_ledger
    from milcourts.checks.validation import run_validation, VALIDATION_FILES, validation_inputs

    try:
        ledger = load_ledger(paths.resolve(args.ledger))
    except LedgerValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    outputs = run_validation(ledger, replicates=args.replicates, workers=args.workers)
    # which ledger the results belong to: reports show them only for that exact file
    outputs["inputs"] = validation_inputs(paths.resolve(args.ledger), args.replicates)
    for path in write_model_outputs(outputs, file_names=VALIDATION_FILES):
        print(f"wrote {path}")
    for name in ("rolling_origin_summary", "simulation_summary"):
        print(outputs[name].to_string(index=False))
    print(f"leave-one-out coverage: {outputs['leave_one_out']['is_covered'].mean():.2f} "
          f"of {len(outputs['leave_one_out'])} figures")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milcourts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate-ledger", help="check a ledger CSV; exit 1 listing every problem")
    validate.add_argument("path", help="ledger CSV, e.g. data/raw/published_figures.csv")
    validate.set_defaults(handler=_validate_ledger)

    record = commands.add_parser("record-provenance",
                                 help="write the provenance record of a new raw file (a new ledger vintage)")
    record.add_argument("path", help="the raw file, e.g. data/raw/published_figures_2027-01.csv")
    record.add_argument("--copied-from", required=True, help="where the file came from")
    record.add_argument("--description", required=True, help="what the file holds")
    record.set_defaults(handler=_record_provenance)

    build = commands.add_parser("build", help="execute and render the reports in the run file")
    build.add_argument("--only", action="append", metavar="NAME", help="build only this run (repeatable)")
    build.add_argument("--run-file", help="run file to use instead of reports.yaml")
    build.add_argument("--jobs", type=int, default=1, metavar="N", help="runs executed at once, each in its own process")
    build.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                       help="time limit per run; a run that exceeds it fails the build, naming the run")
    build.add_argument("--reports-dir", metavar="DIR", help="publish into DIR instead of reports/")
    build.add_argument("--force", action="store_true", help="rebuild every selected run, even those whose inputs are unchanged")
    build.add_argument("--no-pdf", action="store_true", help="HTML only, for quick drafts (`make reports` always makes PDFs)")
    build.set_defaults(handler=_build)

    fit = commands.add_parser("fit", help="fit the monthly filings model; write data/processed/*.csv")
    fit.add_argument("--ledger", default="data/raw/published_figures.csv", help="ledger CSV")
    fit.set_defaults(handler=_fit)

    predict = commands.add_parser("predict", help="total cases received in a window, as JSON with intervals")
    predict.add_argument("--article", required=True, choices=["337", "338", "332", "all_refusal"])
    predict.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    predict.add_argument("--end", required=True, help="last day, YYYY-MM-DD (inclusive)")
    predict.add_argument("--train-end", help="fit only on figures published on or before this date")
    predict.add_argument("--ledger", default="data/raw/published_figures.csv", help="ledger CSV")
    predict.set_defaults(handler=_predict)

    validate = commands.add_parser("validate", help="leave-one-out, rolling origin and simulation recovery")
    validate.add_argument("--ledger", default="data/raw/published_figures.csv", help="ledger CSV")
    validate.add_argument("--replicates", type=int, default=200, help="simulation replicates per scenario")
    validate.add_argument("--workers", type=int, default=2, help="processes for the simulation")
    validate.set_defaults(handler=_validate)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
