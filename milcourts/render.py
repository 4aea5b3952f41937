"""Executed notebook -> code-free HTML -> PDF, offline.

HTML comes from nbconvert's exporter in-process with the project's `report` template; the PDF is
that HTML printed by a system Chromium, the route measured as best in shared/research/toolchain.md
(LaTeX renders pandas tables as text, WebPDF needs a browser download that is blocked here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from milcourts import paths

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "msedge")
_BROWSER_PATHS = (
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
PDF_TIMEOUT_SECONDS = 180


class RenderError(RuntimeError):
    """HTML or PDF could not be produced."""


def export_html(notebook: nbformat.NotebookNode, title: str) -> str:
    """Code-free HTML. All three exclude traits are needed: `exclude_input` alone leaves
    "Out[3]:" prompts and clips SVG charts (shared/research/toolchain.md)."""
    exporter = HTMLExporter(
        template_name="report",
        extra_template_basedirs=[str(paths.TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(
            remove_cell_tags=("remove-cell",),
            remove_all_outputs_tags=("remove-output",),
            remove_input_tags=("remove-input",),
        ),
        enabled=True,
    )
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return body


def find_browser() -> str:
    """A Chromium-family browser to print with; $CHROMIUM_PATH wins."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not Path(configured).is_file():
            raise RenderError(f"CHROMIUM_PATH={configured} does not exist")
        return configured
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for candidate in _BROWSER_PATHS:
        if Path(candidate).is_file():
            return candidate
    raise RenderError(
        "no Chromium or Chrome found to print the PDF: run `make setup` (installs Debian's "
        "chromium) or set CHROMIUM_PATH to a Chromium-family browser"
    )


def print_pdf(html_path: Path, pdf_path: Path) -> None:
    """Print an HTML file to PDF with headless Chromium; raise with its stderr if it fails."""
    browser = find_browser()
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="milcourts-chromium-") as profile:
        command = [
            browser, "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
            # the network is closed here: stop Chromium from calling home on every start
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", f"--user-data-dir={profile}",
            "--no-pdf-header-footer", "--print-to-pdf-no-header", f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with a sandbox
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PDF_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise RenderError(f"{browser} did not print {html_path.name} within {PDF_TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0 or not pdf_path.is_file() or pdf_path.read_bytes()[:5] != b"%PDF-":
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise RenderError(f"{browser} failed to print {html_path.name} (exit {done.returncode}):\n{tail}")
