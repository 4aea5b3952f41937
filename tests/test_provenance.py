"""Raw files are immutable: a changed byte without a renewed record stops the build."""

from __future__ import annotations

import shutil

import pytest

from milcourts import paths
from milcourts.inputs.provenance import ProvenanceError, sha256_of, verify_provenance


def test_real_ledger_matches_its_record():
    record = verify_provenance(paths.LEDGER_CSV, paths.LEDGER_PROVENANCE)
    assert record["sha256"] == sha256_of(paths.LEDGER_CSV)
    assert record["rows"] == 161


def test_changed_byte_is_detected(tmp_path):
    raw = tmp_path / paths.LEDGER_CSV.name
    record = tmp_path / paths.LEDGER_PROVENANCE.name
    shutil.copy(paths.LEDGER_CSV, raw)
    shutil.copy(paths.LEDGER_PROVENANCE, record)
    verify_provenance(raw, record)
    data = bytearray(raw.read_bytes())
    data[-2] = ord("x") if data[-2] != ord("x") else ord("y")
    raw.write_bytes(bytes(data))
    with pytest.raises(ProvenanceError, match="sha256 is .* but published_figures.provenance.yml records"):
        verify_provenance(raw, record)


def test_incomplete_record_is_rejected(tmp_path):
    raw = tmp_path / "x.csv"
    raw.write_text("a\n")
    record = tmp_path / "x.provenance.yml"
    record.write_text("file: x.csv\nsha256: abc\n")
    with pytest.raises(ProvenanceError, match="missing field"):
        verify_provenance(raw, record)


def test_a_new_raw_file_gets_a_record_that_then_verifies_and_is_never_overwritten(tmp_path, capsys):
    from milcourts.__main__ import main

    raw = tmp_path / "published_figures_2027.csv"
    shutil.copy(paths.LEDGER_CSV, raw)
    assert (
        main(
            [
                "record-provenance",
                str(raw),
                "--copied-from",
                "shared/data, January 2027",
                "--description",
                "the ledger as of January 2027",
            ]
        )
        == 0
    )
    record = verify_provenance(raw)  # the record beside the file
    assert record["sha256"] == sha256_of(raw) and record["file"] == raw.name
    assert main(["record-provenance", str(raw), "--copied-from", "x", "--description", "y"]) == 1
    assert "never edited in place" in capsys.readouterr().err
