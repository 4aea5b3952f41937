"""Write outputs so a reader never sees a half-written file or a half-updated set of files."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


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


def write_csv_tables(tables: dict[str, pd.DataFrame], directory: Path, float_format: str | None = None) -> list[Path]:
    """Write each table (file name -> frame) to a temporary sibling first, then rename them all
    together: a reader never sees some files of a set updated and others not."""
    directory.mkdir(parents=True, exist_ok=True)
    pairs = []
    try:
        for name, frame in tables.items():
            final = directory / name
            temporary = temporary_sibling(final)
            frame.to_csv(temporary, index=False, float_format=float_format, lineterminator="\n")
            os.chmod(temporary, 0o644)
            pairs.append((temporary, final))
        replace_all(pairs)
    finally:
        for temporary, _ in pairs:
            temporary.unlink(missing_ok=True)
    return [final for _, final in pairs]
