"""The command line reads as its users expect: help for each command with its defaults, a version."""

from __future__ import annotations

import pytest

from milcourts import __version__
from milcourts.__main__ import main


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"milcourts {__version__}"


@pytest.mark.parametrize("command", ["validate-ledger", "record-provenance", "fit", "build", "predict", "validate"])
def test_every_command_has_help_that_says_what_it_does(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "usage: python -m milcourts " + command in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_the_overview_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("validate-ledger", "record-provenance", "fit", "build", "predict", "validate"):
        assert command in text


def test_relative_paths_are_read_from_the_current_directory(tmp_path, monkeypatch, capsys):
    from milcourts import paths

    (tmp_path / "ledger.csv").write_bytes(paths.LEDGER_CSV.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["validate-ledger", "ledger.csv"]) == 0
    assert "ledger.csv: valid" in capsys.readouterr().out
