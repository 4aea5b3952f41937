"""Load and validate the ledger of published figures.

The ledger is the project's only raw input, so a bad row must stop everything downstream with a
message a person can act on: the file, the line (and figure_id), the column, what was expected and
what was found. Structural problems (encoding, header, field counts) are found with the csv module,
because pandas would silently repair or misalign them; cell-level rules are a pandera schema run
lazily so every violation is reported at once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from milcourts.vocabulary import COURT_FILINGS, LEDGER_ARTICLES, SERIES

LEDGER_COLUMNS: tuple[str, ...] = (
    "figure_id",
    "series",
    "article",
    "measure",
    "period_start",
    "period_end",
    "value",
    "value_qualifier",
    "source_publisher",
    "source_title",
    "source_url",
    "source_date",
    "quote",
    "notes",
)

MEASURES = (
    "count",
    "cumulative",
    "count_persons",
    "cumulative_persons",
    "daily_rate",
    "weekly_rate",
    "monthly_rate",
    "share",
    "pct_change",
    "ratio_vs_prior_year",
    "count_helped",
    "cumulative_helped",
    "cumulative_advised",
    "cumulative_counseled",
)
QUALIFIERS = ("exact", "at_least", "approx", "at_most")

# Columns a figure is meaningless without. Dates may be empty: the ledger README says some sources
# do not state them, and such figures are kept but cannot become constraints.
REQUIRED_NONEMPTY = (
    "figure_id",
    "series",
    "article",
    "measure",
    "value",
    "value_qualifier",
    "source_publisher",
    "quote",
)
# The ledger marks a missing URL in the notes instead of leaving it silently blank.
MISSING_URL_MARKER = "source_url unknown"

# ASCII digits only: Python's \d also matches Arabic-Indic, full-width and other digits, which
# float() and the date parsers then read (or choke on) in ways nobody reviewing the CSV would expect.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Plain decimals as journalists print them: no exponent, no "inf" or "nan", no thousands separator.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_FIGURE_ID = re.compile(r"F[0-9]{3,}")
_URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
# The plausible window of a figure: the series begin in the 2010s (the earliest figure is an official
# statistic for 2010), so a date before 2000 is a typo; nothing can be published after today. Outside
# it a typo such as year 1000 would make the model span a millennium of months.
EARLIEST_DATE = "2000-01-01"
# No count of cases, persons or requests about one army can exceed this (Russia's armed forces number
# about 1.5 million); a larger value is a typo or an attack on the float conversion (1e400 -> inf).
MAX_VALUE = 10_000_000
# Control characters (C0 and C1, DEL) and bidirectional overrides make text that reads differently
# from what it says; line breaks and tabs are kept in the free-text columns (quoted newlines are CSV).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FREE_TEXT_COLUMNS = ("source_title", "quote", "notes")


@dataclass(frozen=True)
class LedgerIssue:
    """One violation, located precisely enough to fix by hand."""

    file: str
    line: int | None
    figure_id: str | None
    column: str | None
    expected: str
    found: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.figure_id:
            where += f" [{self.figure_id}]"
        what = f"column '{self.column}': " if self.column else ""
        found = "" if self.found is None else f", found {self.found!r}"
        return f"{where}: {what}expected {self.expected}{found}"


class LedgerValidationError(ValueError):
    """Raised when the ledger breaks any rule; carries every issue, not just the first."""

    def __init__(self, issues: list[LedgerIssue]):
        self.issues = issues
        lines = [f"{len(issues)} problem(s) in the ledger:"] + [f"  {i}" for i in issues]
        super().__init__("\n".join(lines))


def _is_iso_date(text: str) -> bool:
    if not _ISO_DATE.fullmatch(text):
        return False
    try:
        pd.Timestamp(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text.strip()))


def _optional_date(text: str) -> bool:
    return text == "" or _is_iso_date(text)


def _today() -> str:
    return dt.date.today().isoformat()


def _has_no_control_characters(column: str):
    pattern = _CONTROL if column in FREE_TEXT_COLUMNS else _CONTROL_OR_BREAK
    return lambda text: pattern.search(text) is None


def _cell_schema() -> pa.DataFrameSchema:
    """Cell rules on the raw strings, so a bad cell is reported as written, never as NaN."""

    def nonempty(column: str) -> pa.Check:
        return pa.Check(lambda v: v.strip() != "", element_wise=True, error="a non-empty value")

    def vocabulary(values: tuple[str, ...]) -> pa.Check:
        return pa.Check(lambda v: v in values, element_wise=True, error="one of " + ", ".join(values))

    checks: dict[str, list[pa.Check]] = {c: [] for c in LEDGER_COLUMNS}
    for column in REQUIRED_NONEMPTY:
        checks[column].append(nonempty(column))
    checks["figure_id"].append(
        pa.Check(
            lambda v: v == "" or bool(_FIGURE_ID.fullmatch(v)),
            element_wise=True,
            error="an id like F001 (F and at least three digits)",
        )
    )
    checks["series"].append(vocabulary(SERIES))
    checks["article"].append(vocabulary(LEDGER_ARTICLES))
    checks["measure"].append(vocabulary(MEASURES))
    checks["value_qualifier"].append(vocabulary(QUALIFIERS))
    for column in ("period_start", "period_end", "source_date"):
        checks[column].append(pa.Check(_optional_date, element_wise=True, error="an ISO date YYYY-MM-DD (or empty)"))
        checks[column].append(
            pa.Check(
                lambda v: not _is_iso_date(v) or v >= EARLIEST_DATE,
                element_wise=True,
                error=f"a date from {EARLIEST_DATE} on (the plausible window of a figure)",
            )
        )
        checks[column].append(
            pa.Check(
                lambda v: not _is_iso_date(v) or v <= _today(),
                element_wise=True,
                error="a date no later than today (nothing is published in the future)",
            )
        )
    checks["value"].append(
        pa.Check(
            lambda v: v == "" or _is_number(v),
            element_wise=True,
            error="a number in ASCII digits, without exponent (like 1234 or 12.5)",
        )
    )
    checks["value"].append(
        pa.Check(lambda v: not _is_number(v) or float(v) >= 0, element_wise=True, error="a non-negative number")
    )
    checks["value"].append(
        pa.Check(
            lambda v: not _is_number(v) or float(v) <= MAX_VALUE,
            element_wise=True,
            error=f"a number at most {MAX_VALUE:,}",
        )
    )
    for column in LEDGER_COLUMNS:
        checks[column].append(
            pa.Check(
                _has_no_control_characters(column),
                element_wise=True,
                error="text without control characters"
                + (" (line breaks and tabs are allowed)" if column in FREE_TEXT_COLUMNS else ""),
            )
        )
    checks["source_url"].append(
        pa.Check(lambda v: v == "" or bool(_URL.fullmatch(v)), element_wise=True, error="an http(s) URL")
    )
    columns = {c: pa.Column(str, checks=checks[c], nullable=False) for c in LEDGER_COLUMNS}
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


_CELL_SCHEMA = _cell_schema()


def _decode(raw: bytes, file: str) -> tuple[str | None, list[LedgerIssue]]:
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 4]
        return None, [
            LedgerIssue(file, line, None, None, f"UTF-8 text (undecodable byte at offset {exc.start})", repr(bad)[2:-1])
        ]


def _split_records(text: str, file: str) -> tuple[list[str] | None, list[tuple[int, list[str]]], list[LedgerIssue]]:
    """Header and records with the line each record starts on (quoted newlines span lines)."""
    issues: list[LedgerIssue] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    previous_end = 0
    try:
        for row in reader:
            start_line = previous_end + 1
            previous_end = reader.line_num
            if header is None:
                header = row
                continue
            records.append((start_line, row))
    except csv.Error as exc:
        issues.append(LedgerIssue(file, reader.line_num, None, None, "well-formed CSV quoting", str(exc)))
    return header, records, issues


def _check_header(header: list[str], file: str) -> list[LedgerIssue]:
    issues = []
    for column in LEDGER_COLUMNS:
        if column not in header:
            issues.append(LedgerIssue(file, 1, None, column, "this column in the header (missing)"))
    for column in header:
        if column not in LEDGER_COLUMNS:
            issues.append(LedgerIssue(file, 1, None, column, "only the known ledger columns (unknown extra column)"))
    seen = set()
    for column in header:
        if column in seen:
            issues.append(LedgerIssue(file, 1, None, column, "each column once (duplicated)"))
        seen.add(column)
    return issues


def _row_issues(frame: pd.DataFrame, lines: list[int], file: str) -> list[LedgerIssue]:
    """Pandera cell rules plus the rules that relate cells of a row or rows to each other."""
    issues: list[LedgerIssue] = []
    ids = frame["figure_id"].tolist() if "figure_id" in frame else [None] * len(frame)
    present = [c for c in LEDGER_COLUMNS if c in frame.columns]
    schema = _CELL_SCHEMA.select_columns(present)
    try:
        schema.validate(frame[present], lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"])
        for case in cases.itertuples(index=False):
            i = int(case.index)
            issues.append(LedgerIssue(file, lines[i], ids[i] or None, case.column, case.check, case.failure_case))
    if {"period_start", "period_end"} <= set(frame.columns):
        for i, (start, end) in enumerate(zip(frame["period_start"], frame["period_end"])):
            if _is_iso_date(start) and _is_iso_date(end) and start > end:
                issues.append(
                    LedgerIssue(
                        file, lines[i], ids[i] or None, "period_end", f"a date on or after period_start {start}", end
                    )
                )
    if {"period_end", "source_date"} <= set(frame.columns):
        # A number cannot be published before the period it counts has ended ("so far this
        # year" figures end on their publication date), and the vintage logic relies on it.
        for i, (end, published) in enumerate(zip(frame["period_end"], frame["source_date"])):
            if _is_iso_date(end) and _is_iso_date(published) and published < end:
                issues.append(
                    LedgerIssue(
                        file, lines[i], ids[i] or None, "source_date", f"a date on or after period_end {end}", published
                    )
                )
    if "source_url" in frame.columns:
        notes = frame["notes"] if "notes" in frame.columns else pd.Series([""] * len(frame))
        for i, (url, note) in enumerate(zip(frame["source_url"], notes)):
            if url == "" and MISSING_URL_MARKER not in note:
                issues.append(
                    LedgerIssue(
                        file,
                        lines[i],
                        ids[i] or None,
                        "source_url",
                        f"an http(s) URL, or notes saying '[{MISSING_URL_MARKER}: why]'",
                        url,
                    )
                )
    if "figure_id" in frame.columns:
        first_line: dict[str, int] = {}
        for i, fid in enumerate(ids):
            if fid in first_line:
                issues.append(
                    LedgerIssue(
                        file, lines[i], fid, "figure_id", f"a unique id (already used on line {first_line[fid]})", fid
                    )
                )
            elif fid:
                first_line[fid] = lines[i]
    return issues


def check_ledger(path: Path | str) -> tuple[pd.DataFrame | None, list[LedgerIssue]]:
    """Validate a ledger file; return the typed frame (None if invalid) and every issue found."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        return None, [LedgerIssue(file, None, None, None, "an existing ledger file (not found)")]
    raw = path.read_bytes()
    if not raw.strip():
        return None, [LedgerIssue(file, None, None, None, "a header and at least one figure (file is empty)")]
    text, issues = _decode(raw, file)
    if text is None:
        return None, issues
    header, records, issues = _split_records(text, file)
    if header is None:
        return None, issues + [LedgerIssue(file, None, None, None, "a header row")]
    issues += _check_header(header, file)
    if not records and not issues:
        return None, [LedgerIssue(file, None, None, None, "at least one figure after the header (header only)")]

    width = len(header)
    good_rows, good_lines = [], []
    id_position = header.index("figure_id") if "figure_id" in header else None
    for line, row in records:
        if len(row) != width:
            fid = row[id_position] if id_position is not None and len(row) > id_position else None
            kind = "blank line" if not row else f"{len(row)} fields"
            issues.append(LedgerIssue(file, line, fid, None, f"{width} fields as in the header", kind))
            continue
        good_rows.append(row)
        good_lines.append(line)
    frame = pd.DataFrame(good_rows, columns=header, dtype=str)
    if len(set(header)) == len(header):
        issues += _row_issues(frame, good_lines, file)
    if issues:
        issues.sort(key=lambda i: (i.line or 0, LEDGER_COLUMNS.index(i.column) if i.column in LEDGER_COLUMNS else -1))
        return None, issues
    return _typed(frame, good_lines), []


def _typed(frame: pd.DataFrame, lines: list[int]) -> pd.DataFrame:
    """Convert the validated strings; safe because every cell already passed its rule."""
    typed = frame[list(LEDGER_COLUMNS)].copy()
    for column in ("period_start", "period_end", "source_date"):
        typed[column] = pd.to_datetime(typed[column].replace("", None), format="%Y-%m-%d")
    typed["value"] = typed["value"].astype(float)
    typed.insert(0, "ledger_line", lines)
    return typed.reset_index(drop=True)


def load_ledger(path: Path | str) -> pd.DataFrame:
    """The validated ledger as a typed frame; raises LedgerValidationError listing every problem."""
    frame, issues = check_ledger(path)
    if issues:
        raise LedgerValidationError(issues)
    assert frame is not None
    return frame


def summarise_ledger(ledger: pd.DataFrame, path: Path | str) -> str:
    """One line a person can read after a successful validation."""
    dates = ledger["source_date"].dropna()
    latest = dates.max().date().isoformat() if len(dates) else "unknown"
    return (
        f"{Path(path).name}: valid; {len(ledger)} figures, {ledger['series'].nunique()} series, "
        f"{(ledger['series'] == COURT_FILINGS).sum()} court-filing figures, latest source_date {latest}"
    )


def published_by(ledger: pd.DataFrame, moment: str | pd.Timestamp) -> pd.DataFrame:
    """What was known on `moment`: figures published by then whose period had ended by then.

    A figure with no publication date counts as published at its period end (the earliest it can
    have been), so it is kept only if that is on or before `moment`.
    """
    moment = pd.Timestamp(moment)
    published = ledger["source_date"].fillna(ledger["period_end"])
    return ledger[(published <= moment) & (ledger["period_end"] <= moment)].reset_index(drop=True)
