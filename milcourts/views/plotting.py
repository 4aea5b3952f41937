"""Charts as functions that return figures; notebooks decide captions and display."""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from milcourts.inputs.constraints import ConstraintView
from milcourts.views.audit import MEASURE_FAMILIES
from milcourts.views.reporting import PALETTE
from milcourts.vocabulary import article_label

# At 10 in wide a chart prints at about 0.7 scale on A4; 11.5 in tall fits one page with heading and caption.
MAX_FIGURE_HEIGHT_IN = 11.5


def plot_ledger_timeline(ledger: pd.DataFrame, first_year: int = 2020) -> plt.Figure:
    """One band per series/article; each figure a bar over its period, coloured by measure family.

    Bands are as tall as the number of figures they hold, so dense rows (Art. 337 filings) stay
    legible instead of overplotting.
    """
    drawable = ledger.dropna(subset=["period_start", "period_end"]).copy()
    drawable["band"] = (
        drawable["series"].str.replace("_", " ")
        + " · "
        + drawable["article"].map(lambda a: article_label(a, capitalised=True))
    )
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
    ax.legend(
        handles,
        families,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(families),
        fontsize=8,
        frameon=False,
        handlelength=1.5,
        columnspacing=1.2,
    )
    ax.set_title("Every published figure, by the period it covers", pad=24)
    fig.tight_layout()
    return fig


def plot_observation_pattern(view: ConstraintView) -> plt.Figure:
    """Which months each usable figure adds up: the design the monthly model is fitted to."""
    figures = view.figures.sort_values(["article", "period_start", "period_end", "figure_id"])
    weights = view.month_weights.loc[figures["figure_id"]]
    labels = [
        f"{r.figure_id} {r.article}{'' if r.is_preferred else ' (earlier vintage)'}" for r in figures.itertuples()
    ]
    fig, ax = plt.subplots(figsize=(10, min(MAX_FIGURE_HEIGHT_IN, 1.5 + 0.17 * len(labels))))
    sns.heatmap(
        weights.to_numpy(),
        ax=ax,
        cmap="Blues",
        vmin=0,
        vmax=1,
        linewidths=0.2,
        linecolor="#eeeeee",
        cbar_kws={"label": "share of the month covered", "shrink": 0.5},
    )
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels, fontsize=7, rotation=0)
    month_labels = [str(m) if m.month in (1, 7) else "" for m in weights.columns]
    ax.set_xticks(np.arange(len(month_labels)) + 0.5, month_labels, fontsize=7, rotation=90)
    ax.set_xlabel("calendar month")
    ax.set_ylabel("")
    ax.set_title(f"Months each usable {view.series.replace('_', ' ')} figure adds up")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- trend report


def _month_mid(months: pd.Series) -> pd.Series:
    return pd.PeriodIndex(months, freq="M").to_timestamp() + pd.Timedelta(days=14)


def plot_monthly_trend(
    monthly: pd.DataFrame,
    figures: pd.DataFrame,
    break_month: str,
    running: pd.DataFrame,
    running_all: pd.DataFrame,
    running_figures: pd.DataFrame,
    title: str,
) -> plt.Figure:
    """Top: modelled monthly counts with 80/95% prediction bands, the no-mobilisation counterfactual
    and the forecast; published figures as what they are (a single month a point, a longer window a
    horizontal segment at its monthly average). Bottom: running totals since the mobilisation,
    published against modelled (in the totals' own counting base, and all cases)."""
    palette = sns.color_palette(PALETTE, 10)
    model_colour, data_colour, counterfactual_colour = palette[0], palette[3], palette[7]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9), height_ratios=(3, 2), sharex=True)
    x = _month_mid(monthly["month"])
    observed = ~monthly["is_forecast"].to_numpy()
    for mask, alpha_scale, label in ((observed, 1.0, "model"), (~observed, 0.55, "forecast")):
        if not mask.any():
            continue
        if label == "forecast" and observed.any():  # join the forecast band to the last modelled month
            mask = mask.copy()
            mask[np.nonzero(~observed)[0][0] - 1] = True
        first = label == "model"  # one legend entry per element; the forecast is described by its style
        top.fill_between(
            x[mask],
            monthly["lower_95"][mask],
            monthly["upper_95"][mask],
            color=model_colour,
            alpha=0.15 * alpha_scale,
            linewidth=0,
            label="95% prediction interval" if first else None,
        )
        top.fill_between(
            x[mask],
            monthly["lower_80"][mask],
            monthly["upper_80"][mask],
            color=model_colour,
            alpha=0.3 * alpha_scale,
            linewidth=0,
            label="80% prediction interval" if first else None,
        )
        top.plot(
            x[mask],
            monthly["expected"][mask],
            color=model_colour,
            linestyle="-" if first else "--",
            linewidth=2,
            label="expected monthly cases" if first else "forecast (dashed, lighter band)",
        )
    after = pd.PeriodIndex(monthly["month"], freq="M") >= pd.Period(break_month, "M")
    top.plot(
        x[after],
        monthly["counterfactual_expected"][after],
        color=counterfactual_colour,
        linestyle=":",
        linewidth=2,
        label="pre-mobilisation trend continued (counterfactual)",
    )
    for r in figures.itertuples():
        start, end = pd.Timestamp(r.period_start), pd.Timestamp(r.period_end)
        days = (end - start).days + 1
        average = r.value / days * 30.44
        marker = {"at_least": "^", "at_most": "v"}.get(r.value_qualifier, "o")
        if start.to_period("M") == end.to_period("M") and days >= 28:
            top.plot(
                start + pd.Timedelta(days=14),
                r.value,
                marker=marker,
                color=data_colour,
                markersize=7,
                linestyle="none",
                zorder=5,
            )
        else:
            top.plot(
                [start, end], [average, average], color=data_colour, linewidth=2.5, zorder=4, solid_capstyle="butt"
            )
            if marker != "o":
                top.plot(start + (end - start) / 2, average, marker=marker, color=data_colour, markersize=6, zorder=5)
    top.plot(
        [],
        [],
        color=data_colour,
        marker="o",
        linewidth=2.5,
        label="published figure (point: one month; bar: monthly average of a longer window)",
    )
    break_start = pd.Period(break_month, "M").to_timestamp()
    for ax in (top, bottom):
        ax.axvline(break_start, color="#444", linewidth=1, linestyle="--")
    top.annotate(
        "break",
        (break_start, 0),
        xycoords=("data", "axes fraction"),
        xytext=(3, 4),
        textcoords="offset points",
        fontsize=9,
        color="#444",
    )
    top.set_ylabel("cases received per month")
    top.set_ylim(bottom=0)
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8, frameon=True)

    bottom.fill_between(
        running["month_end"],
        running["lower_95"],
        running["upper_95"],
        color=model_colour,
        alpha=0.2,
        linewidth=0,
        label="model, in the running totals' counting base (95% interval)",
    )
    bottom.plot(running["month_end"], running["expected"], color=model_colour, linewidth=2)
    bottom.plot(
        running_all["month_end"],
        running_all["expected"],
        color=counterfactual_colour,
        linewidth=1.5,
        linestyle="--",
        label="model, every case received",
    )
    if len(running_figures):
        bottom.plot(
            pd.to_datetime(running_figures["period_end"]),
            running_figures["value"],
            "o",
            color=data_colour,
            markersize=6,
            label="published running total since the mobilisation",
        )
    bottom.set_ylabel("cases since 21 Sep 2022")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize=8, frameon=True)
    for ax in (top, bottom):
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    bottom.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    fig.tight_layout()
    return fig


def plot_residuals(figures: pd.DataFrame) -> plt.Figure:
    """Standardised residual of every figure the fit used, latest period at the top."""
    used = figures[figures["is_used"]].copy()
    used["label"] = used["figure_id"] + "  " + used["period_start"] + " to " + used["period_end"]
    used = used.sort_values(["period_end", "period_start"])
    palette = sns.color_palette(PALETTE, 10)
    fig, ax = plt.subplots(figsize=(10, min(MAX_FIGURE_HEIGHT_IN, 1.5 + 0.28 * len(used))))
    colours = [palette[0] if inside else palette[3] for inside in used["is_inside_95"]]
    ax.scatter(used["standardised_residual"], range(len(used)), c=colours, zorder=3)
    ax.set_yticks(range(len(used)), used["label"], fontsize=8)
    for edge in (-2, 2):
        ax.axvline(edge, color="#888", linestyle="--", linewidth=1)
    ax.axvline(0, color="#444", linewidth=1)
    ax.set_xlabel("standardised residual (published minus expected, in standard deviations)")
    ax.scatter([], [], color=palette[0], label="inside the 95% interval")
    ax.scatter([], [], color=palette[3], label="outside the 95% interval")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_validation(scores: pd.DataFrame) -> plt.Figure:
    """Each held-out figure against its 95% predictive interval, on the scale of the prediction
    (value / predicted median), so figures of 5 and of 16,000 cases share one axis."""
    palette = sns.color_palette(PALETTE, 10)
    scored = scores.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, min(MAX_FIGURE_HEIGHT_IN, 1.5 + 0.3 * len(scored))))
    median = scored["predicted_median"].clip(lower=1e-9)
    y = np.arange(len(scored))
    ax.hlines(
        y,
        scored["lower_95"] / median,
        scored["upper_95"] / median,
        color=palette[0],
        linewidth=3,
        label="95% predictive interval",
    )
    colours = [palette[2] if c else palette[3] for c in scored["is_covered"]]
    markers = scored["value_qualifier"].map({"at_least": ">", "at_most": "<"}).fillna("o")
    for yi, value, colour, marker in zip(y, scored["value"] / median, colours, markers):
        ax.plot(value, yi, marker=marker, color=colour, markersize=7, linestyle="none", zorder=3)
    ax.plot([], [], "o", color=palette[2], label="published value, covered")
    ax.plot([], [], "o", color=palette[3], label="published value, not covered")
    ax.set_xscale("log")
    ax.axvline(1, color="#444", linewidth=1)
    ax.set_yticks(y, scored["label"], fontsize=8)
    ax.set_xlabel("relative to the predicted median (log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _draw_published(ax, figures: pd.DataFrame, colour) -> None:
    """Published windows as what they are: a single month a point, a longer window a bar at its
    monthly average; bounds as triangles."""
    for r in figures.itertuples():
        start, end = pd.Timestamp(r.period_start), pd.Timestamp(r.period_end)
        days = (end - start).days + 1
        marker = {"at_least": "^", "at_most": "v"}.get(r.value_qualifier, "o")
        if start.to_period("M") == end.to_period("M") and days >= 28:
            ax.plot(
                start + pd.Timedelta(days=14),
                r.value,
                marker=marker,
                color=colour,
                markersize=6,
                linestyle="none",
                zorder=5,
            )
        else:
            average = r.value / days * 30.44
            ax.plot([start, end], [average, average], color=colour, linewidth=2.5, zorder=4, solid_capstyle="butt")


def plot_articles_side_by_side(
    monthly: pd.DataFrame, figures: pd.DataFrame, break_month: str, titles: dict[str, str]
) -> plt.Figure:
    """One panel per article, each on its own scale (their sizes differ tenfold), sharing time."""
    palette = sns.color_palette(PALETTE, 10)
    articles = list(titles)
    fig, axes = plt.subplots(len(articles), 1, figsize=(10, 3 * len(articles) + 0.5), sharex=True)
    break_start = pd.Period(break_month, "M").to_timestamp()
    for ax, article in zip(np.atleast_1d(axes), articles):
        rows = monthly[(monthly["article"] == article) & ~monthly["is_forecast"]]
        x = _month_mid(rows["month"])
        ax.fill_between(x, rows["lower_95"], rows["upper_95"], color=palette[0], alpha=0.2, linewidth=0)
        ax.plot(x, rows["expected"], color=palette[0], linewidth=2)
        _draw_published(ax, figures[figures["article"] == article], palette[3])
        ax.axvline(break_start, color="#444", linewidth=1, linestyle="--")
        ax.set_title(titles[article], loc="left", fontsize=11)
        ax.set_ylabel("cases per month")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    first = np.atleast_1d(axes)[0]
    first.plot([], [], color=palette[0], linewidth=2, label="model: expected cases, 95% prediction interval")
    first.plot(
        [], [], color=palette[3], marker="o", linewidth=2.5, label="published (point: a month; bar: window average)"
    )
    first.legend(loc="upper left", fontsize=8, frameon=True)
    last = np.atleast_1d(axes)[-1]
    last.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))
    last.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    fig.tight_layout()
    return fig


def plot_requests_against_filings(requests_monthly: pd.DataFrame, windows, filings: pd.DataFrame) -> plt.Figure:
    """Top: court filings (model). Bottom: help requests as published (disjoint windows) with their
    fitted trend. Two panels rather than two y-axes on one, which would invite reading the
    crossing of the lines as meaningful."""
    palette = sns.color_palette(PALETTE, 10)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    x = _month_mid(filings["month"])
    top.fill_between(
        x,
        filings["lower_95"],
        filings["upper_95"],
        color=palette[0],
        alpha=0.2,
        linewidth=0,
        label="95% prediction interval",
    )
    top.plot(x, filings["expected"], color=palette[0], linewidth=2, label="expected cases (model)")
    top.set_ylabel("court cases per month")
    top.set_title("AWOL and desertion cases received by military courts", loc="left", fontsize=11)
    top.legend(loc="upper left", fontsize=8)
    x = _month_mid(requests_monthly["month"])
    bottom.fill_between(
        x,
        requests_monthly["lower_95"],
        requests_monthly["upper_95"],
        color=palette[2],
        alpha=0.2,
        linewidth=0,
        label="log-linear trend, 95% confidence band",
    )
    bottom.plot(x, requests_monthly["expected"], color=palette[2], linewidth=2)
    for weights, value in zip(windows.weights, windows.value):
        covered = windows.months[weights > 0]
        average = value / weights.sum()
        if len(covered) == 1:
            bottom.plot(
                covered[0].start_time + pd.Timedelta(days=14), value, "o", color=palette[3], markersize=7, zorder=5
            )
        else:
            for month in covered:  # a disjoint window may skip months: one bar piece per month
                bottom.plot(
                    [month.start_time, month.end_time],
                    [average, average],
                    color=palette[3],
                    linewidth=2.5,
                    zorder=4,
                    solid_capstyle="butt",
                )
    bottom.plot(
        [],
        [],
        color=palette[3],
        marker="o",
        linewidth=2.5,
        label="published requests (point: a month; bar: window average)",
    )
    bottom.set_ylabel("requests per month")
    bottom.set_title("Requests for help to desert received by Idite Lesom", loc="left", fontsize=11)
    bottom.legend(loc="upper left", fontsize=8)
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    bottom.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    fig.tight_layout()
    return fig
