"""Publish a build's outputs into reports/ all at once, with the manifest and the index."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from milcourts import __version__
from milcourts.atomic import signals_held, write_text_atomically
from milcourts.build.incremental import OUTPUT_FORMATS, data_folder, is_own_output, read_manifest
from milcourts.inputs.provenance import sha256_of


class PublishError(RuntimeError):
    """reports/ holds something in the way that the build did not make."""


def _format_order(name: str) -> tuple[int, str]:
    extension = name.rsplit(".", 1)[-1]
    return (OUTPUT_FORMATS.index(extension) if extension in OUTPUT_FORMATS else len(OUTPUT_FORMATS), name)


def render_index(manifest: dict) -> str:
    """reports/index.html: every report with its data vintage and build time, all text escaped."""
    rows = []
    for entry in sorted(manifest["reports"].values(), key=lambda e: e["name"]):
        formats = [name for name in entry["outputs"] if "/" not in name]
        links = " · ".join(
            f'<a href="{html.escape(name)}">{html.escape(name.rsplit(".", 1)[1].upper())}</a>'
            for name in sorted(formats, key=_format_order)
        )
        tables = sorted(name for name in entry["outputs"] if "/" in name and name.endswith(".csv"))
        if tables:
            described = [name for name in entry["outputs"] if name.endswith("/datapackage.json")]
            links += (
                "<br><small>Data: "
                + ", ".join(
                    f'<a href="{html.escape(name)}">{html.escape(name.rsplit("/", 1)[1])}</a>'
                    for name in tables + described
                )
                + "</small>"
            )
        params = ", ".join(f"{k} = {v!r}" for k, v in entry["parameters"].items()) or "defaults"
        rows.append(
            "<tr>"
            f"<td><strong>{html.escape(entry['title'])}</strong><br><small>{html.escape(entry['subtitle'])}</small></td>"
            f"<td>{links}</td><td>{html.escape(entry['data_vintage'])}</td>"
            f"<td>{html.escape(entry['built_at'])}</td><td><code>{html.escape(params)}</code></td>"
            "</tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Reports: prosecutions for refusing to fight</title>
<style>body{{font-family:"DejaVu Sans",Arial,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.5rem;text-align:left;vertical-align:top}}</style>
</head><body>
<h1>Reports: prosecutions of soldiers who refuse to fight</h1>
<p>Built from the ledger of published figures (data/raw). Data vintage is the latest publication
date in the ledger a report read. The executed notebook (IPYNB) is the audit trail of each report;
the data tables behind each report are CSV files described by a Frictionless datapackage.json.</p>
<table><thead><tr><th>Report</th><th>Formats</th><th>Data vintage</th><th>Built</th><th>Parameters</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p><small>milcourts {html.escape(__version__)}</small></p>
</body></html>
"""


def publish(staging: Path, entries: list[dict], reports_dir: Path) -> None:
    """Rename every output into reports/, then the manifest and index; nothing else touches it.

    reports/ holds exactly what the manifest lists: a file the previous entry of a run listed and
    the new one does not (the PDF of a build before a `--no-pdf` one) is removed. A file is only
    removed if it is provably the build's own: a name the run's builds make (NAME.* or a file in
    NAME-data/) with the very checksum the manifest recorded for it (a forged manifest cannot make
    the build delete a reader's file, and a file edited since is left alone); a data folder left
    empty by that goes too. A data folder that is a link or a file is refused, not written through.
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(reports_dir)
    stale, folders = [], set()
    for entry in entries:
        folder = reports_dir / data_folder(entry["name"])
        if any("/" in name for name in entry["outputs"]):
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise PublishError(f"{folder} exists and is not a folder the build made; move it away and build again")
            folders.add(folder)
        previous = manifest["reports"].get(entry["name"], {}).get("outputs", {})
        for name, digest in previous.items():
            path = reports_dir / name
            if (
                name not in entry["outputs"]
                and is_own_output(entry["name"], name)
                and not path.parent.is_symlink()
                and path.is_file()
                and not path.is_symlink()
                and sha256_of(path) == digest
            ):
                stale.append(path)
        manifest["reports"][entry["name"]] = entry
    with signals_held():
        for folder in folders:
            folder.mkdir(exist_ok=True)
        for entry in entries:
            for name in entry["outputs"]:
                os.replace(staging / name, reports_dir / name)
        for path in stale:
            path.unlink(missing_ok=True)
            if path.parent != reports_dir and not any(path.parent.iterdir()):
                path.parent.rmdir()
        write_text_atomically(reports_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_text_atomically(reports_dir / "index.html", render_index(manifest))
