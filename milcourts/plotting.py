"""Charts as functions that return figures; notebooks decide captions and display."""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from milcourts.audit import ARTICLE_LABELS, MEASURE_FAMILIES
from milcourts.constraints import ConstraintView
from milcourts.reporting import PALETTE

# At 10 in wide a chart prints at about 0.7 scale on A4; 11.5 in tall fits one page with heading and caption.
MAX_FIGURE_HEIGHT_IN = 11.5


def plot_ledger_timeline(ledger: pd.DataFrame, first_year: int = 2020) -> plt.Figure:
    """One band per series/article; each figure a bar over its period, coloured by measure family.

    Bands are as tall as the number of figures they hold, so dense rows (Art. 337 filings) stay
    legible instead of overplotting.
    """
    drawable = ledger.dropna(subset=["period_start", "period_end"]).copy()
    drawable["band"] = drawable["series"].str.replace("_", " ") + " · " + drawable["article"].map(ARTICLE_LABELS)
    drawable["family"] = drawable["measure"].map(MEASURE_FAMILIES)
    families = list(dict.fromkeys(MEASURE_FAMILIES.values()))
    # six well-separated colours of the colour-blind palette (its orange and brown are too alike)
    palette = sns.color_palette(PALETTE, 10)
    colours = dict(zip(families, [palette[i] for i in (0, 1, 2, 3, 4, 7)]))
    left = pd.Timestamp(first_year, 1, 1)
    right = drawable["period_end"].max() + pd.Timedelta(days=60)

    bands = sorted(drawable["band"].unique())
    heights = drawable["band"].value_counts()
    # Height capped so the chart fits one A4 page (a chart split across pages is unreadable).
    fig, ax = plt.subplots(figsize=(10, min(MAX_FIGURE_HEIGHT_IN, 1.2 + 0.06 * len(drawable) + 0.2 * len(bands))))
    top, ticks = 0.0, []
    for band in bands:
        rows = drawable[drawable["band"] == band].sort_values(["period_start", "period_end", "figure_id"])
        n = heights[band]
        ys = top + 0.5 + np.arange(n)
        for y, row in zip(ys, rows.itertuples()):
            start = max(row.period_start, left)
            colour = colours[row.family]
            if row.period_start == row.period_end:
                ax.plot([start], [y], "o", color=colour, markersize=3)
            else:
                ax.plot([start, row.period_end], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        ticks.append((top + n / 2 + 0.5, band))
        top += n + 1.5
        ax.axhline(top - 0.75, color="#bbbbbb", linewidth=0.6)
    ax.set_yticks([t for t, _ in ticks], [b for _, b in ticks], fontsize=8)
    ax.set_ylim(top, 0)
    ax.set_xlim(left, right)
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.grid(axis="y", visible=False)
    handles = [plt.Line2D([], [], color=colours[f], linewidth=3) for f in families]
    ax.legend(handles, families, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(families),
              fontsize=8, frameon=False, handlelength=1.5, columnspacing=1.2)
    ax.set_title("Every published figure, by the period it covers", pad=24)
    fig.tight_layout()
    return fig


def plot_observation_pattern(view: ConstraintView) -> plt.Figure:
    """Which months each usable figure adds up: the design the monthly model is fitted to."""
    figures = view.figures.sort_values(["article", "period_start", "period_end", "figure_id"])
    weights = view.month_weights.loc[figures["figure_id"]]
    labels = [
        f"{r.figure_id} {r.article}{'' if r.is_preferred else ' (earlier vintage)'}"
        for r in figures.itertuples()
    ]
    fig, ax = plt.subplots(figsize=(10, min(MAX_FIGURE_HEIGHT_IN, 1.5 + 0.17 * len(labels))))
    sns.heatmap(weights.to_numpy(), ax=ax, cmap="Blues", vmin=0, vmax=1, linewidths=0.2,
                linecolor="#eeeeee", cbar_kws={"label": "share of the month covered", "shrink": 0.5})
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels, fontsize=7, rotation=0)
    month_labels = [str(m) if m.month in (1, 7) else "" for m in weights.columns]
    ax.set_xticks(np.arange(len(month_labels)) + 0.5, month_labels, fontsize=7, rotation=90)
    ax.set_xlabel("calendar month")
    ax.set_ylabel("")
    ax.set_title(f"Months each usable {view.series.replace('_', ' ')} figure adds up")
    fig.tight_layout()
    return fig
