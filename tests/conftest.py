"""Shared fixtures: tiny ledgers and tiny notebooks built in tmp_path, never the real outputs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from milcourts import paths
from milcourts.inputs.ledger import LEDGER_COLUMNS

GOOD_ROW = {
    "figure_id": "F001",
    "series": "court_filings",
    "article": "337",
    "measure": "count",
    "period_start": "2023-01-01",
    "period_end": "2023-12-31",
    "value": "5092",
    "value_qualifier": "exact",
    "source_publisher": "Mediazona",
    "source_title": "Desertion day",
    "source_url": "https://zona.media/article/2024/02/29/desertion-day",
    "source_date": "2024-03-04",
    "quote": "5,092 AWOL cases in 2023",
    "notes": "",
}


def ledger_text(rows: list[dict], columns=LEDGER_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def row(**changes) -> dict:
    return {**GOOD_ROW, **changes}


@pytest.fixture
def write_ledger(tmp_path):
    """write_ledger(rows) -> path of a ledger CSV holding those rows."""

    def write(rows: list[dict], name: str = "ledger.csv", columns=LEDGER_COLUMNS) -> Path:
        path = tmp_path / name
        path.write_text(ledger_text(rows, columns), encoding="utf-8")
        return path

    return write


DEFAULT_PARAMETERS = 'greeting: str = "hello"  # word to print'


def write_notebook(root: Path, name: str, cells: list[str], parameters: str | None = DEFAULT_PARAMETERS) -> Path:
    """A tiny notebook root/notebooks/NAME.ipynb: a title, a parameters cell, the code cells."""
    notebook = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    notebook.cells.append(new_markdown_cell(f"# {name}"))
    if parameters is not None:
        notebook.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    notebook.cells += [new_code_cell(c) for c in cells]
    path = root / "notebooks" / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def make_notebook(tmp_path):
    """make_notebook(name, code_cells, parameters=...) -> path of a tiny notebook."""

    def make(name: str, cells: list[str], parameters: str | None = DEFAULT_PARAMETERS) -> Path:
        return write_notebook(tmp_path, name, cells, parameters)

    return make


@pytest.fixture
def real_ledger() -> Path:
    return paths.LEDGER_CSV


@pytest.fixture(autouse=True, scope="session")
def products_outside_the_project(tmp_path_factory):
    """Tests never read or write the project's own data/processed: fits a test makes without a
    build of its own (load_or_fit) are looked for, and not found, in a folder of the session's."""
    import os

    previous = os.environ.get("MILCOURTS_PROCESSED_DIR")
    os.environ["MILCOURTS_PROCESSED_DIR"] = str(tmp_path_factory.mktemp("processed"))
    yield
    if previous is None:
        os.environ.pop("MILCOURTS_PROCESSED_DIR", None)
    else:
        os.environ["MILCOURTS_PROCESSED_DIR"] = previous


def build_report_on_ledger(tmp_path: Path, ledger, notebook: str, name: str, parameters: dict) -> str:
    """Write `ledger` (a DataFrame with the ledger's columns, dates as timestamps) to a CSV, build
    one run of `notebook` on it into tmp_path (HTML only) and return the report's HTML."""
    import shutil

    import yaml

    from milcourts.build.incremental import BuildSettings
    from milcourts.build.pipeline import build

    ledger_csv = tmp_path / "synthetic.csv"
    frame = ledger[list(LEDGER_COLUMNS)].copy()
    for column in ("period_start", "period_end", "source_date"):
        frame[column] = frame[column].dt.strftime("%Y-%m-%d")
    frame["value"] = frame["value"].map(lambda v: f"{v:.0f}")
    frame.to_csv(ledger_csv, index=False)
    from milcourts.inputs.provenance import write_record

    write_record(ledger_csv, copied_from="simulated by the test", description="synthetic ledger for one test")
    (tmp_path / "notebooks").mkdir()
    shutil.copy(paths.NOTEBOOKS_DIR / notebook, tmp_path / "notebooks")
    run_file = tmp_path / "reports.yaml"
    run_file.write_text(
        yaml.safe_dump(
            {
                "reports": [
                    {
                        "name": name,
                        "notebook": f"notebooks/{notebook}",
                        "title": f"Synthetic {name}",
                        "parameters": {"ledger_csv": str(ledger_csv), **parameters},
                    }
                ]
            }
        )
    )
    # the project's main fit with its checks is `make reports`' (checked by test_published_reports);
    # here only the run's own fits
    settings = BuildSettings(
        run_file=run_file,
        root=tmp_path,
        reports_dir=tmp_path / "reports",
        build_dir=tmp_path / "build",
        processed_dir=tmp_path / "processed",
        make_pdf=False,
        main_fit=False,
    )
    build(settings=settings)
    return (settings.reports_dir / f"{name}.html").read_text(encoding="utf-8")
