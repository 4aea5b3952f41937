"""Put figures, tables and sentences into a notebook's output so the exported report reads well.

Charts are inline SVG inside <figure> with a caption and alt text (vector in the PDF, accessible in
the HTML). Every piece of text that may come from the ledger is HTML-escaped here, once, so a
field containing `<script>` shows as text in every report.
"""

from __future__ import annotations

import html
import io
import itertools
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import HTML, display

from milcourts.products.public import DataPackage

PALETTE = "colorblind"  # seaborn's colour-blind-safe qualitative palette
CHART_FONT_PT = 8.0  # every chart text at least this size, at the size the chart prints
_figure_counter = itertools.count(1)


def setup_report_style() -> None:
    """Deterministic, readable charts: fixed SVG ids, DejaVu Sans (covers Cyrillic), no date stamp."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font="DejaVu Sans")
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "milcourts",  # stable element ids -> same inputs give the same HTML
            "svg.fonttype": "path",  # glyphs as paths: the PDF needs no font for chart text
            "figure.dpi": 100,
            # charts are drawn at the width they print (plotting.PRINT_WIDTH_IN), so these sizes are
            # the printed sizes: nothing below 7.5 pt
            **{
                key: CHART_FONT_PT
                for key in (
                    "font.size",
                    "axes.labelsize",
                    "xtick.labelsize",
                    "ytick.labelsize",
                    "legend.fontsize",
                    "legend.title_fontsize",
                )
            },
            "axes.titlesize": CHART_FONT_PT + 1.5,
            "figure.titlesize": CHART_FONT_PT + 2,
            "axes.titleweight": "bold",
            "figure.titleweight": "bold",
        }
    )
    # pandas/matplotlib deprecation chatter is not for readers; real errors still raise.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def figure_to_svg(fig: plt.Figure, prefix: str) -> str:
    """The figure as an inline <svg> whose ids are unique on a page holding several charts."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'id="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return svg


def show_figure(fig: plt.Figure, caption: str, alt_text: str) -> None:
    """Display a chart with its caption and alt text, then close it so it is not drawn twice."""
    prefix = f"fig{next(_figure_counter)}"
    svg = figure_to_svg(fig, prefix).replace("<svg ", f'<svg role="img" aria-label="{html.escape(alt_text)}" ', 1)
    plt.close(fig)
    display(HTML(f'<figure class="report-figure">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'))


def _escaped_cell(value, is_link: bool) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    text = html.escape(str(value))
    if is_link and re.match(r"https?://", str(value)):
        return f'<a href="{text}">{text}</a>'
    return text


def show_table(
    frame: pd.DataFrame,
    caption: str | None = None,
    index: bool = False,
    link_columns: tuple[str, ...] = (),
    compact: bool = False,
) -> None:
    """Display a table with every cell escaped; missing values show as an em dash. Cells of
    `link_columns` holding an http(s) URL become links (href and text escaped as well). `compact`
    sets smaller, tighter rows: for reference lists such as the sources, which a reader scans for one
    row rather than reads (at the body size they filled three of the summary's pages)."""
    classes = ["report-table", "report-compact"] if compact else "report-table"
    if link_columns:
        shown = frame.copy()
        for column in shown.columns:
            shown[column] = [_escaped_cell(v, column in link_columns) for v in shown[column]]
        shown.columns = [html.escape(str(c)) for c in shown.columns]
        table = shown.to_html(index=index, escape=False, border=0, classes=classes)
    else:
        table = frame.to_html(index=index, escape=True, border=0, na_rep="—", classes=classes)
    title = f"<p><em>{html.escape(caption)}</em></p>" if caption else ""
    display(HTML(title + _dates_unbroken(table)))


_ISO_DATE = re.compile(r"\b\d{4}-\d{2}(?:-\d{2})?\b")


def _dates_unbroken(table_html: str) -> str:
    """Keep each ISO date on one line: browsers may break after its hyphens, and a narrow column
    showed "2023-06-" over "01". Only text between tags is touched, never an attribute (a link)."""
    return re.sub(
        r">([^<]+)<",
        lambda text: (
            ">" + _ISO_DATE.sub(lambda date: f'<span class="report-date">{date.group()}</span>', text.group(1)) + "<"
        ),
        table_html,
    )


def show_sources(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The sources appendix: figures with their source numbers, then each publication once, as a
    reference list (a table squeezed the links and dates into narrow, many-line cells)."""
    figures, publications = tables
    show_table(figures, "Figures used, by figure id", compact=True)
    references = []
    for row in publications.itertuples(index=False):
        link = _escaped_cell(row.link, is_link=True) if row.link else "no link"
        references.append(
            f'<p class="report-reference">{html.escape(row.source)} {html.escape(row.publisher)}, '
            f"{html.escape(row.published)}. <em>{html.escape(row.title)}</em>. {link}</p>"
        )
    display(HTML("<p><em>Publications, by source number</em></p>" + "".join(references)))


@dataclass
class Section:
    """What a report section shows, in order: paragraphs, a figure (chart, caption, alt text), a
    table (frame, caption). Views build it; the notebook shows it."""

    paragraphs: list[str] = field(default_factory=list)
    figure: tuple | None = None
    table: tuple[pd.DataFrame, str] | None = None


def show_section(section: Section) -> None:
    if section.paragraphs:
        show_paragraphs(section.paragraphs)
    if section.figure is not None:
        chart, caption, alt_text = section.figure
        show_figure(chart, caption=caption, alt_text=alt_text)
    if section.table is not None:
        show_table(*section.table)


def build_date():
    """The day the report is built; SOURCE_DATE_EPOCH makes it reproducible, as for the build stamp."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return pd.Timestamp(int(epoch), unit="s") if epoch else pd.Timestamp.now().normalize()


def show_heading(text: str, level: int = 2) -> None:
    """A heading generated from the data (it names the article), escaped; PDF bookmarks come from it."""
    display(HTML(f"<h{level}>{html.escape(text)}</h{level}>"))


def show_box(title: str, paragraphs: list[str], definitions: list[tuple[str, str]] = ()) -> None:
    """A framed box: how to read and cite the numbers, with a short glossary."""
    terms = "".join(f"<dt>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>" for t, d in definitions)
    display(
        HTML(
            f'<aside class="report-box"><h3>{html.escape(title)}</h3>'
            + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            + (f"<p><strong>Words used</strong></p><dl>{terms}</dl>" if terms else "")
            + "</aside>"
        )
    )


def show_paragraphs(sentences: list[str], links: dict[str, str] | None = None) -> None:
    """Display generated prose, one paragraph per sentence, escaped; each phrase in `links` (phrase
    -> address) becomes a link where it occurs."""

    def linked(sentence: str) -> str:
        text = html.escape(sentence)
        for phrase, href in (links or {}).items():
            text = text.replace(html.escape(phrase), f'<a href="{html.escape(href)}">{html.escape(phrase)}</a>')
        return text

    # one output per paragraph: the PDF printer breaks pages between outputs, never inside one, so
    # a long block of findings would otherwise move whole to the next page and leave a blank one
    for sentence in sentences:
        display(HTML(f"<p>{linked(sentence)}</p>"))


def show_validation(sentence: str | None, scores: pd.DataFrame, plot) -> None:
    """The validation section, or a plain statement that it has not been run for this ledger."""
    if sentence is None or scores.empty:
        show_paragraphs(["Validation results are not available: run `make validate` before building reports."])
        return
    show_paragraphs([sentence])
    show_figure(
        plot(scores),
        caption=(
            "Each held-out figure (dot) against the 95% predictive interval the model gave for it before seeing it, "
            "relative to the predicted median. Green: inside the range, or a bound (triangle) the model meets more "
            "likely than not; amber: a bound met with less than even odds; red: outside the range."
        ),
        alt_text=f"Interval chart of {len(scores)} held-out figures with their predictive intervals.",
    )


def publish_data(package: DataPackage, data_dir: str) -> None:
    """Write the report's data tables and their datapackage.json into `data_dir` (the build sets
    it to the report's data folder; "" writes nothing) and list them for the reader, linked by what
    they hold (file names are in the links, not the prose)."""
    folder = Path(data_dir) if data_dir else None
    if folder is not None:
        package.write(folder)
    rows = []
    for table, frame in package.tables:
        title = html.escape(table.title)
        what = f'<a href="{html.escape(folder.name)}/{html.escape(table.name)}.csv">{title}</a>' if folder else title
        rows.append(f"<tr><td>{what} (CSV)</td><td>{len(frame):,}</td><td>{html.escape(table.description)}</td></tr>")
    if folder is not None:
        described = f'<a href="{html.escape(folder.name)}/datapackage.json">a description of every column</a>'
        lead = (
            "These tables hold the numbers this report states. They are published beside it as CSV files, with "
            f"{described} and its unit in the Frictionless Data Package format. Licence: CC BY 4.0."
        )
    else:
        lead = "The build publishes these tables beside the report as CSV files; this run wrote none."
    display(
        HTML(
            f'<p>{lead}</p><table class="report-table"><thead><tr><th>table</th><th>rows</th>'
            f"<th>what it holds</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    )
