"""Provenance records for raw files: where a file came from and the checksum it must still have.

data/raw is immutable. A raw file whose bytes no longer match its record was edited in place, which
silently changes every downstream number, so the build refuses to run until the record is renewed
on purpose (a new vintage with its own record).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

REQUIRED_FIELDS = ("file", "sha256", "bytes", "copied_from", "copied_on", "description")


class ProvenanceError(RuntimeError):
    """The raw file and its provenance record disagree, or the record is incomplete."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def read_provenance(record_path: Path) -> dict:
    if not record_path.is_file():
        raise ProvenanceError(f"{record_path}: provenance record not found")
    record = yaml.safe_load(record_path.read_text(encoding="utf-8")) or {}
    missing = [f for f in REQUIRED_FIELDS if not record.get(f)]
    if missing:
        raise ProvenanceError(f"{record_path}: missing field(s) {', '.join(missing)}")
    return record


def verify_provenance(raw_path: Path, record_path: Path) -> dict:
    """Return the record if the raw file still has the recorded checksum; raise otherwise."""
    record = read_provenance(record_path)
    if record["file"] != raw_path.name:
        raise ProvenanceError(
            f"{record_path}: field 'file' names {record['file']!r}, expected {raw_path.name!r}"
        )
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
