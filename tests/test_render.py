"""The PDF printer: one browser prints many pages; a browser that fails, dies or hangs is an error
that says so, and no partial PDF is left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pypdf
import pytest

from milcourts.build.render import PdfPrinter, RenderError


def page(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.html"
    path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>@page {{size: A4}}</style>'
        f"</head><body><p>{text}</p></body></html>",
        encoding="utf-8",
    )
    return path


def fake_browser(tmp_path: Path, monkeypatch, body: str) -> None:
    script = tmp_path / "fake-chromium"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CHROMIUM_PATH", str(script))


@pytest.mark.slow
def test_one_browser_prints_each_page_to_its_own_pdf(tmp_path):
    pages = {"first": "Самовольное оставление части", "second": "Desertion, Art. 338"}
    with PdfPrinter() as printer:
        browser_pid = printer._process.pid
        for name, text in pages.items():
            printer.print(page(tmp_path, name, text), tmp_path / f"{name}.pdf")
        assert printer._process.pid == browser_pid  # the same browser printed both
    for name, text in pages.items():
        pdf = pypdf.PdfReader(tmp_path / f"{name}.pdf")
        assert text in pdf.pages[0].extract_text()
        assert pdf.pages[0].mediabox.width == pytest.approx(595, abs=2)  # A4 from the page CSS
    assert printer._process.poll() is not None  # closed with the block
    assert not Path(printer._profile.name).exists()


@pytest.mark.slow
def test_missing_page_is_named_and_the_printer_goes_on(tmp_path):
    with PdfPrinter() as printer:
        with pytest.raises(RenderError, match="missing.html: no such file"):
            printer.print(tmp_path / "missing.html", tmp_path / "missing.pdf")
        printer.print(page(tmp_path, "present", "still printing"), tmp_path / "present.pdf")
    assert not (tmp_path / "missing.pdf").exists()
    assert "still printing" in pypdf.PdfReader(tmp_path / "present.pdf").pages[0].extract_text()


@pytest.mark.slow
def test_browser_that_dies_is_an_error_and_leaves_no_pdf(tmp_path):
    with PdfPrinter() as printer:
        printer._process.kill()
        printer._process.wait()
        with pytest.raises(RenderError, match=r"exited during Target\.createTarget"):
            printer.print(page(tmp_path, "report", "text"), tmp_path / "report.pdf")
    assert not list(tmp_path.glob("report.pdf*"))


def test_browser_that_fails_to_start_shows_its_stderr(tmp_path, monkeypatch):
    fake_browser(tmp_path, monkeypatch, 'echo "cannot open display: this browser is broken" >&2\nexit 3')
    with PdfPrinter() as printer:
        with pytest.raises(RenderError) as raised:
            printer.print(page(tmp_path, "report", "text"), tmp_path / "report.pdf")
    message = str(raised.value)
    assert message.startswith("printing report.html to PDF: ")
    assert "fake-chromium exited during Target.createTarget (exit 3)" in message
    assert "cannot open display: this browser is broken" in message
    assert not list(tmp_path.glob("report.pdf*"))


def test_browser_that_hangs_is_killed_after_the_timeout(tmp_path, monkeypatch):
    fake_browser(tmp_path, monkeypatch, "exec sleep 60")
    printer = PdfPrinter(timeout_seconds=1)
    try:
        with pytest.raises(RenderError, match=r"did not answer Target\.createTarget within 1 s"):
            printer.print(page(tmp_path, "report", "text"), tmp_path / "report.pdf")
        assert printer._process.poll() is not None  # killed, not left running
    finally:
        printer.close()
    assert not list(tmp_path.glob("report.pdf*"))


def test_pipe_ends_are_not_left_open_in_this_process(tmp_path, monkeypatch):
    fake_browser(tmp_path, monkeypatch, "exit 0")
    before = set(os.listdir("/proc/self/fd"))
    PdfPrinter().close()
    assert set(os.listdir("/proc/self/fd")) <= before


@pytest.mark.slow
def test_pdfs_carry_bookmarks_from_the_headings_and_are_tagged(tmp_path):
    html = tmp_path / "outlined.html"
    html.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>@page {size: A4}</style></head><body>'
        "<h1>Key findings</h1><p>one</p><h2>Monthly cases</h2><p>two</p><h2>Sources</h2><p>three</p></body></html>",
        encoding="utf-8",
    )
    with PdfPrinter() as printer:
        printer.print(html, tmp_path / "outlined.pdf")
    reader = pypdf.PdfReader(tmp_path / "outlined.pdf")

    def titles(outline):
        for item in outline:
            yield from titles(item) if isinstance(item, list) else [item.title]

    assert list(titles(reader.outline)) == ["Key findings", "Monthly cases", "Sources"]
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
