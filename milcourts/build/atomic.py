"""Write outputs so a reader never sees a half-written file or a half-updated set of files."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT/SIGTERM while files are renamed, so no interruption lands between renames."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def temporary_sibling(path: Path) -> Path:
    """A private temporary file beside `path` (same filesystem, so os.replace is atomic)."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    return Path(name)


def write_text_atomically(path: Path, text: str) -> None:
    temporary = temporary_sibling(path)
    temporary.write_text(text, encoding="utf-8")
    os.chmod(temporary, 0o644)  # mkstemp files are private; published files are for readers
    os.replace(temporary, path)


def replace_all(pairs: list[tuple[Path, Path]]) -> None:
    """Rename every (temporary, final) pair with interruptions held back."""
    with signals_held():
        for temporary, final in pairs:
            os.replace(temporary, final)
