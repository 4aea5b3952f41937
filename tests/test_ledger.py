"""The ledger schema: every rule has a case that breaks it, and the message says where and what."""

from __future__ import annotations

import pandas as pd
import pytest

from milcourts.__main__ import main
from milcourts.inputs.ledger import LEDGER_COLUMNS, LedgerValidationError, check_ledger, load_ledger
from tests.conftest import ledger_text, row


def issues_of(path):
    frame, issues = check_ledger(path)
    assert frame is None, "an invalid ledger must not produce a frame"
    return [str(i) for i in issues]


def test_real_ledger_is_valid_and_typed(real_ledger):
    ledger = load_ledger(real_ledger)
    assert len(ledger) == 161
    assert ledger["figure_id"].is_unique
    assert pd.api.types.is_datetime64_any_dtype(ledger["period_start"])
    assert ledger["value"].dtype == float
    # a row's line number points at that row in the file
    first = ledger.iloc[0]
    text_line = real_ledger.read_text(encoding="utf-8").splitlines()[first["ledger_line"] - 1]
    assert text_line.startswith(first["figure_id"] + ",")


def test_valid_small_ledger(write_ledger):
    frame, issues = check_ledger(write_ledger([row(), row(figure_id="F002", value="12.5", period_end="")]))
    assert issues == []
    assert frame["value"].tolist() == [5092.0, 12.5]
    assert pd.isna(frame.loc[1, "period_end"])


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert issues_of(path) == [f"{path}: expected a header and at least one figure (file is empty)"]


def test_header_only(write_ledger):
    path = write_ledger([])
    assert issues_of(path) == [f"{path}: expected at least one figure after the header (header only)"]


def test_missing_column(write_ledger):
    columns = [c for c in LEDGER_COLUMNS if c != "source_date"]
    path = write_ledger([row()], columns=columns)
    assert f"{path}:1: column 'source_date': expected this column in the header (missing)" in issues_of(path)


def test_extra_unknown_column(tmp_path):
    path = tmp_path / "extra.csv"
    text = ledger_text([row()]).splitlines()
    path.write_text("\n".join([text[0] + ",comment", text[1] + ",hi"]) + "\n", encoding="utf-8")
    assert issues_of(path) == [
        f"{path}:1: column 'comment': expected only the known ledger columns (unknown extra column)"
    ]


@pytest.mark.parametrize(
    ("changes", "column", "expected"),
    [
        ({"period_start": "2023-02-30"}, "period_start", "an ISO date YYYY-MM-DD (or empty), found '2023-02-30'"),
        ({"period_end": "31/12/2023"}, "period_end", "an ISO date YYYY-MM-DD (or empty), found '31/12/2023'"),
        (
            {"period_start": "2024-01-01", "period_end": "2023-12-31"},
            "period_end",
            "a date on or after period_start 2024-01-01, found '2023-12-31'",
        ),
        ({"value": "-5"}, "value", "a non-negative number, found '-5'"),
        (
            {"value": "about 500"},
            "value",
            "a number in ASCII digits, without exponent (like 1234 or 12.5), found 'about 500'",
        ),
        ({"article": "339"}, "article", "one of 337, 338, 332, all_refusal, na, found '339'"),
        ({"measure": "total"}, "measure", "one of count, cumulative"),
        ({"value_qualifier": "roughly"}, "value_qualifier", "one of exact, at_least, approx, at_most, found 'roughly'"),
        ({"series": "arrests"}, "series", "one of court_filings"),
        ({"source_url": "zona.media/article"}, "source_url", "an http(s) URL, found 'zona.media/article'"),
        ({"source_url": ""}, "source_url", "an http(s) URL, or notes saying '[source_url unknown: why]'"),
        ({"source_date": "2023-06-01"}, "source_date", "a date on or after period_end 2023-12-31, found '2023-06-01'"),
        ({"quote": ""}, "quote", "a non-empty value"),
        ({"figure_id": "12"}, "figure_id", "an id like F001"),
    ],
)
def test_bad_cell_names_file_line_id_and_column(write_ledger, changes, column, expected):
    path = write_ledger([row(figure_id="F001"), row(**{"figure_id": "F002", **changes})])
    messages = issues_of(path)
    figure_id = changes.get("figure_id", "F002")
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"{path}:3 [{figure_id}]: column '{column}': expected {expected}")


def test_missing_url_is_accepted_when_notes_say_why(write_ledger):
    path = write_ledger([row(source_url="", notes="[source_url unknown: not given in the seed file]")])
    assert check_ledger(path)[1] == []


def test_duplicate_id_points_at_first_use(write_ledger):
    path = write_ledger([row(), row(value="7")])
    assert issues_of(path) == [
        f"{path}:3 [F001]: column 'figure_id': expected a unique id (already used on line 2), found 'F001'"
    ]


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(ledger_text([row(quote="Самовольное оставление части")]).encode("cp1251"))
    (message,) = issues_of(path)
    assert message.startswith(f"{path}:2: expected UTF-8 text (undecodable byte at offset ")


def test_quoted_embedded_newline_is_valid_and_lines_stay_right(write_ledger):
    path = write_ledger([row(quote="first line\nsecond line"), row(figure_id="F002", value="-1")])
    messages = issues_of(path)
    # F002 starts on line 4 because F001's quote spans lines 2-3
    assert messages == [f"{path}:4 [F002]: column 'value': expected a non-negative number, found '-1'"]
    frame, issues = check_ledger(write_ledger([row(quote="first line\nsecond line")], name="ok.csv"))
    assert issues == [] and frame.loc[0, "quote"] == "first line\nsecond line"


def test_row_with_too_many_fields(tmp_path):
    path = tmp_path / "wide.csv"
    lines = ledger_text([row()]).splitlines()
    path.write_text("\n".join([lines[0], lines[1] + ",surplus"]) + "\n", encoding="utf-8")
    assert issues_of(path) == [f"{path}:2 [F001]: expected 14 fields as in the header, found '15 fields'"]


def test_every_problem_is_reported_at_once(write_ledger):
    path = write_ledger(
        [
            row(value="-1"),
            row(figure_id="F002", article="999", period_start="2023-13-01"),
            row(figure_id="F003", value_qualifier="maybe"),
        ]
    )
    messages = issues_of(path)
    assert len(messages) == 4
    assert [m.split(": column")[0] for m in messages] == [
        f"{path}:2 [F001]",
        f"{path}:3 [F002]",
        f"{path}:3 [F002]",
        f"{path}:4 [F003]",
    ]


def test_load_ledger_raises_with_all_issues(write_ledger):
    path = write_ledger([row(value="-1"), row(figure_id="F002", value="x")])
    with pytest.raises(LedgerValidationError) as raised:
        load_ledger(path)
    assert len(raised.value.issues) == 2
    assert "2 problem(s) in the ledger" in str(raised.value)


def test_cli_valid_prints_one_line_summary(real_ledger, capsys):
    assert main(["validate-ledger", str(real_ledger)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "published_figures.csv: valid; 161 figures, 6 series, 61 court-filing figures, latest source_date 2026-01-02"
    ]


def test_cli_invalid_exits_nonzero_with_messages(write_ledger, capsys):
    path = write_ledger([row(value="-1")])
    assert main(["validate-ledger", str(path)]) == 1
    err = capsys.readouterr().err
    assert "INVALID, 1 problem(s)" in err
    assert f"{path}:2 [F001]: column 'value': expected a non-negative number, found '-1'" in err


def test_cli_missing_file(tmp_path, capsys):
    assert main(["validate-ledger", str(tmp_path / "nope.csv")]) == 1
    assert "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- impossible values

ARABIC_INDIC = "\u0661\u0662\u0663"  # ١٢٣
FULL_WIDTH = "\uff11\uff12\uff13"  # １２３


@pytest.mark.parametrize(
    ("changes", "column", "expected"),
    [
        ({"value": "1e400"}, "value", "a number in ASCII digits"),
        ({"value": "1e15"}, "value", "a number in ASCII digits"),
        ({"value": "20000000"}, "value", "a number at most 10,000,000"),
        ({"value": "inf"}, "value", "a number in ASCII digits"),
        ({"value": "nan"}, "value", "a number in ASCII digits"),
        ({"value": ARABIC_INDIC}, "value", "a number in ASCII digits"),
        ({"value": FULL_WIDTH}, "value", "a number in ASCII digits"),
        ({"figure_id": "F" + ARABIC_INDIC}, "figure_id", "an id like F001"),
        ({"figure_id": "F" + FULL_WIDTH}, "figure_id", "an id like F001"),
        ({"source_date": "2024-03-0\u0664"}, "source_date", "an ISO date YYYY-MM-DD"),
        ({"period_start": "1000-01-01"}, "period_start", "a date from 2000-01-01"),
        ({"period_start": "1999-12-31"}, "period_start", "a date from 2000-01-01"),
        ({"source_date": "9999-12-31"}, "source_date", "a date no later than today"),
        ({"quote": "5,092 cases\x00"}, "quote", "text without control characters"),
        ({"source_publisher": "Media\x1bzona"}, "source_publisher", "text without control characters"),
        ({"notes": "see \u202eevil\u202c"}, "notes", "text without control characters"),
        ({"source_url": "https://zona.media/\x7f"}, "source_url", "text without control characters"),
    ],
)
def test_impossible_values_are_rejected_with_line_id_and_column(write_ledger, changes, column, expected):
    path = write_ledger([row(figure_id="F001"), row(**{"figure_id": "F002", **changes})])
    messages = issues_of(path)
    figure_id = changes.get("figure_id", "F002")
    assert any(m.startswith(f"{path}:3 [{figure_id}]: column '{column}': expected {expected}") for m in messages), (
        messages
    )


def test_line_breaks_and_tabs_stay_allowed_in_quotes_and_notes(write_ledger):
    frame, issues = check_ledger(write_ledger([row(quote="line one\nline\ttwo", notes="a\r\nb")]))
    assert issues == []


def test_cli_reports_a_non_ascii_digit_in_a_date_without_a_traceback(write_ledger, capsys):
    path = write_ledger([row(source_date="2024-0\u0663-04")])
    assert main(["validate-ledger", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2 [F001]: column 'source_date': expected an ISO date YYYY-MM-DD" in err
