"""Executed notebook -> code-free HTML -> PDF, offline.

HTML comes from nbconvert's exporter in-process with the project's `report` template; the PDF is
that HTML printed by a system Chromium, the route measured as best in shared/research/toolchain.md
(LaTeX renders pandas tables as text, WebPDF needs a browser download that is blocked here).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
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
# Chromium's own --print-to-pdf options (A4 from the page CSS, backgrounds, no header or footer),
# plus a document outline (PDF bookmarks from the headings) and a tagged PDF (structure for screen
# readers), said explicitly rather than left to Chromium's defaults.
PRINT_OPTIONS = {
    "printBackground": True,
    "preferCSSPageSize": True,
    "displayHeaderFooter": False,
    "generateDocumentOutline": True,
    "generateTaggedPDF": True,
}


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


def _above_nine(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class PdfPrinter:
    """One headless Chromium, kept open to print many pages, driven over the DevTools pipe.

    Starting Chromium costs about 2 s of CPU on 2 processes; a page printed by a browser already
    running costs under 1 s. A build prints every report with one browser, started while the first
    kernel starts. The CDP pipe (fds 3 and 4, NUL-terminated JSON) needs no port and no extra
    package. The print options are PRINT_OPTIONS.

    Measured against playwright driving the same system Chromium (five reports, five runs each,
    2 cores, 2026-11-30): the same pages pixel for pixel and the same outline and tags, but
    playwright took a median 7.9-9.4 s against 5.5 s, 11.5-14.7 s of CPU against 6.7 s, 80-160 MB
    more memory, and 165 MB more in the venv (a bundled Node runtime); and its page.pdf() sends
    generateTaggedPDF false unless told otherwise. So the client stays.
    Use as a context manager; a browser that dies or hangs raises RenderError with its stderr.
    """

    def __init__(self, timeout_seconds: float = PDF_TIMEOUT_SECONDS):
        self.timeout_seconds = timeout_seconds
        self.browser = find_browser()
        self._profile = tempfile.TemporaryDirectory(prefix="milcourts-chromium-", ignore_cleanup_errors=True)
        self._stderr = tempfile.TemporaryFile()
        # pipe ends the browser keeps are moved to fds >= 10 first, so that putting them on 3 and 4
        # in the child can never overwrite one with the other
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        to_browser_read, from_browser_write = (_above_nine(fd) for fd in (to_browser_read, from_browser_write))
        flags = [
            "--headless",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            # the network is closed here: stop Chromium from calling home on every start
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={self._profile.name}",
            "--remote-debugging-pipe",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.insert(0, "--no-sandbox")  # Chromium refuses to run as root with a sandbox
        # bash puts the pipe ends on the fds Chromium reads and writes (a preexec_fn could do it too,
        # but is unsafe with the build's threads; dash cannot name fds above 9)
        script = (
            f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write} {to_browser_read}<&- {from_browser_write}>&-'
        )
        try:
            self._process = subprocess.Popen(
                [shutil.which("bash") or "/bin/bash", "-c", script, self.browser, *flags, "about:blank"],
                pass_fds=(to_browser_read, from_browser_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        finally:
            os.close(to_browser_read)
            os.close(from_browser_write)
        self._buffer, self._next_id, self._events = b"", 0, []

    def __enter__(self) -> PdfPrinter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _failure(self, what: str) -> RenderError:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        tail = "\n".join(line for line in lines[-10:])
        return RenderError(f"{self.browser} {what}" + (f":\n{tail}" if tail else ""))

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(
        self, method: str, params: dict | None = None, session: str | None = None, deadline: float | None = None
    ) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        deadline = deadline or time.monotonic() + self.timeout_seconds
        try:
            os.write(self._to_browser, json.dumps(command).encode() + b"\0")
            while True:
                message = self._receive(deadline)
                if message.get("id") == self._next_id:
                    break
                if "method" in message:
                    self._events.append(message)
        except (BrokenPipeError, EOFError) as exc:
            raise self._failure(f"exited during {method} (exit {self._exit_status()})") from exc
        except TimeoutError as exc:
            self._kill()
            raise self._failure(f"did not answer {method} within {self.timeout_seconds:g} s") from exc
        if "error" in message:
            raise RenderError(f"{self.browser}: {method} failed: {message['error'].get('message')}")
        return message["result"]

    def _await_event(self, method: str, session: str, deadline: float) -> None:
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return
            try:
                self._events.append(self._receive(deadline))
            except EOFError as exc:
                raise self._failure(f"exited while waiting for {method}") from exc
            except TimeoutError as exc:
                self._kill()
                raise self._failure(f"did not send {method} within {self.timeout_seconds:g} s") from exc

    def print(self, html_path: Path, pdf_path: Path) -> None:
        """Print `html_path` to `pdf_path` (written whole or not at all)."""
        html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
        if not html_path.is_file():
            raise RenderError(f"cannot print {html_path}: no such file")
        try:
            data = self._print(html_path)
        except RenderError as error:
            raise RenderError(f"printing {html_path.name} to PDF: {error}") from error
        if data[:5] != b"%PDF-":
            raise RenderError(f"{self.browser} printed {html_path.name} to something that is not a PDF")
        partial = pdf_path.with_name(pdf_path.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, pdf_path)

    def _print(self, html_path: Path) -> bytes:
        deadline = time.monotonic() + self.timeout_seconds
        target = self._call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
        try:
            session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True}, deadline=deadline)[
                "sessionId"
            ]
            self._call("Page.enable", session=session, deadline=deadline)
            loaded = self._call("Page.navigate", {"url": html_path.as_uri()}, session, deadline)
            if loaded.get("errorText"):
                raise RenderError(f"{self.browser} could not load {html_path.name}: {loaded['errorText']}")
            self._await_event("Page.loadEventFired", session, deadline)
            printed = self._call("Page.printToPDF", PRINT_OPTIONS, session, deadline)
        finally:
            if self._process.poll() is None:
                with contextlib.suppress(RenderError):  # never hide why the print failed
                    self._call("Target.closeTarget", {"targetId": target})
            self._events.clear()
        return base64.b64decode(printed["data"])

    def _exit_status(self) -> int | None:
        """The exit status of a browser whose pipe closed: it may not have been reaped yet."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._process.wait(timeout=5)
        return None

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def close(self) -> None:
        """Ask the browser to quit, kill it if it does not, and remove its profile."""
        if self._process.poll() is None:
            with contextlib.suppress(RenderError):
                self._call("Browser.close", deadline=time.monotonic() + 5)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stderr.close()
        self._profile.cleanup()


def print_pdf(html_path: Path, pdf_path: Path) -> None:
    """Print one HTML file to PDF with a browser of its own (a build keeps one PdfPrinter open)."""
    with PdfPrinter() as printer:
        printer.print(html_path, pdf_path)
