"""Provenance records for raw files: where a file came from and the checksum it must still have.

data/raw is immutable. A raw file whose bytes no longer match its record was edited in place, which
silently changes every downstream number, so the build refuses to run until the record is renewed
on purpose (a new vintage with its own record).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import yaml

from milcourts.paths import PACKAGE_DIR

REQUIRED_FIELDS = ("file", "sha256", "bytes", "copied_from", "copied_on", "description")


class ProvenanceError(RuntimeError):
    """The raw file and its provenance record disagree, or the record is incomplete."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def code_fingerprint(parts: tuple[str, ...] = ()) -> str:
    """sha256 of the package's source (only the listed files or folders of it, if `parts` are
    given). Paths are taken relative to the package, so two checkouts of one commit agree."""
    roots = [PACKAGE_DIR / part for part in parts] if parts else [PACKAGE_DIR]
    files = sorted(
        {
            p
            for root in roots
            for p in ([root] if root.is_file() else root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def record_path_for(raw_path: Path) -> Path:
    """Where a raw file's record lives: beside it, `NAME.provenance.yml` for `NAME.csv`."""
    raw_path = Path(raw_path)
    return raw_path.with_name(f"{raw_path.stem}.provenance.yml")


def write_record(raw_path: Path, copied_from: str, description: str) -> Path:
    """Record a new raw file's checksum and origin (a new ledger vintage, a test ledger).

    Refuses to replace an existing record: a raw file whose record changes is no longer the file
    the reports built from it describe.
    """
    raw_path = Path(raw_path)
    record_path = record_path_for(raw_path)
    if record_path.exists():
        raise ProvenanceError(f"{record_path} exists; raw files and their records are never edited in place")
    if not copied_from.strip() or not description.strip():
        raise ProvenanceError("a provenance record needs where the file came from and what it holds")
    record = {
        "file": raw_path.name,
        "sha256": sha256_of(raw_path),
        "bytes": raw_path.stat().st_size,
        "copied_from": copied_from,
        "copied_on": dt.date.today().isoformat(),
        "description": description,
    }
    record_path.write_text(
        f"# Provenance of {raw_path.name}. The file is immutable: never edit it in place.\n"
        + yaml.safe_dump(record, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return record_path


def read_provenance(record_path: Path) -> dict:
    if not record_path.is_file():
        raise ProvenanceError(f"{record_path}: provenance record not found")
    try:
        record = yaml.safe_load(record_path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ProvenanceError(f"{record_path}: not a readable provenance record ({error})") from error
    if not isinstance(record, dict):
        raise ProvenanceError(f"{record_path}: expected a mapping of field: value")
    missing = [f for f in REQUIRED_FIELDS if not record.get(f)]
    if missing:
        raise ProvenanceError(f"{record_path}: missing field(s) {', '.join(missing)}")
    return record


def verify_provenance(raw_path: Path, record_path: Path | None = None) -> dict:
    """Return the record if the raw file still has the recorded checksum; raise otherwise.
    The record is the one beside the file unless `record_path` names another."""
    raw_path = Path(raw_path)
    record_path = record_path_for(raw_path) if record_path is None else Path(record_path)
    if not raw_path.is_file():
        raise ProvenanceError(f"{raw_path}: raw file not found")
    record = read_provenance(record_path)
    if record["file"] != raw_path.name:
        raise ProvenanceError(f"{record_path}: field 'file' names {record['file']!r}, expected {raw_path.name!r}")
    actual = sha256_of(raw_path)
    if actual != record["sha256"]:
        raise ProvenanceError(
            f"{raw_path}: sha256 is {actual} but {record_path.name} records {record['sha256']}; "
            "raw data is immutable: add the new version as a new file with its own record "
            "instead of editing this one"
        )
    if raw_path.stat().st_size != int(record["bytes"]):
        raise ProvenanceError(f"{raw_path}: size differs from {record_path.name}")
    return record
