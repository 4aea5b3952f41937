"""Charts as functions that return figures; the notebooks show them with captions.

Every chart is drawn at the width it prints (the A4 text block, PRINT_WIDTH_IN) with the font
sizes reporting.setup_report_style sets, so what is set here is what a reader sees on paper: no
text below 7.5 pt. Legends sit outside the data; the mobilisation and the Criminal Code
amendments are marked and named; a forecast's wide band never squashes the observed period.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from milcourts.checks.validation import CONSISTENT, IN_TENSION, INCONSISTENT
from milcourts.inputs.constraints import ConstraintView
from milcourts.views.audit import MEASURE_FAMILIES
from milcourts.views.narrative import RESIDUAL_LIMIT
from milcourts.views.reporting import PALETTE
from milcourts.vocabulary import ARTICLE_SHORT_LABELS, CRIMINAL_CODE_AMENDMENTS, MOBILISATION, article_label

# The A4 text block: 210 mm less 16 mm margins each side is 178 mm; a chart this wide prints at 1:1.
PRINT_WIDTH_IN = 7.0
# A chart and its heading and caption fit one page (A4 less margins is about 10 in tall).
MAX_FIGURE_HEIGHT_IN = 8.0
EVENT_LABEL = "mobilisation (21 Sep 2022) and\nCriminal Code amended (24 Sep) "
# Series in a chart's band labels, where a line is short.
SERIES_SHORT = {
    "court_filings": "cases received",
    "court_verdicts": "verdicts",
    "convictions_official": "official convictions",
    "criminal_cases_opened": "cases opened",
    "help_requests": "help requests",
    "other": "other",
}


def _colours() -> dict[str, tuple]:
    palette = sns.color_palette(PALETTE, 10)
    return {"model": palette[0], "data": palette[3], "trend": palette[7], "requests": palette[2], "good": palette[2]}


def _thousands(ax) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _mark_events(ax, label: bool) -> None:
    """The mobilisation (21 Sep 2022) and the Criminal Code amendments (24 Sep 2022): three days
    apart, one line on a monthly axis, named once per chart."""
    ax.axvline(MOBILISATION, color="#444", linewidth=1, linestyle="--", zorder=1)
    ax.axvline(CRIMINAL_CODE_AMENDMENTS, color="#444", linewidth=1, linestyle="--", zorder=1)
    if label:
        ax.annotate(
            EVENT_LABEL.strip(),
            (MOBILISATION, 0.97),
            xycoords=("data", "axes fraction"),
            ha="right",
            va="top",
            xytext=(-4, 0),
            textcoords="offset points",
            color="#333",
        )


PROVISIONAL_LABEL = "provisional months (one release only)"


def _shade_provisional(ax, monthly: pd.DataFrame, label: bool = True) -> None:
    """Grey band over the months only one release has reached (model.observations.is_provisional)."""
    if "is_provisional" not in monthly or not monthly["is_provisional"].any():
        return
    months = pd.PeriodIndex(monthly.loc[monthly["is_provisional"], "month"], freq="M")
    ax.axvspan(
        months.min().start_time,
        months.max().end_time,
        color="#888",
        alpha=0.18,
        linewidth=0,
        zorder=0,
        label=PROVISIONAL_LABEL if label else None,
    )


def _legend_above(ax, ncol: int = 2) -> None:
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncol=ncol,
        frameon=False,
        borderaxespad=0,
        handlelength=1.8,
        columnspacing=1.2,
    )


def _month_axis(ax, months: tuple[int, ...] = (1, 7)) -> None:
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=months))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))


# ----------------------------------------------------------------------------- ledger audit


def plot_ledger_timeline(ledger: pd.DataFrame, first_year: int = 2020) -> plt.Figure:
    """One band per series/article; each figure a bar over its period, coloured by measure family.

    Bands are as tall as the number of figures they hold, so dense rows (Art. 337 filings) stay
    legible instead of overplotting.
    """
    drawable = ledger.dropna(subset=["period_start", "period_end"]).copy()
    drawable["band"] = (
        drawable["series"].map(SERIES_SHORT).fillna(drawable["series"])
        + " · "
        + drawable["article"].map(ARTICLE_SHORT_LABELS).fillna("no single article")
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
    height = min(MAX_FIGURE_HEIGHT_IN, 1.4 + 0.06 * len(drawable) + 0.2 * len(bands))
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, height))
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
    ax.set_yticks([t for t, _ in ticks], [b for _, b in ticks])
    ax.set_ylim(top, 0)
    ax.set_xlim(left, right)
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.grid(axis="y", visible=False)
    _mark_events(ax, label=False)
    handles = [plt.Line2D([], [], color=colours[f], linewidth=3) for f in families]
    handles.append(plt.Line2D([], [], color="#444", linewidth=1, linestyle="--"))
    ax.legend(
        handles,
        [*families, "mobilisation and Criminal Code amendments, Sep 2022"],
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncol=2,
        frameon=False,
        borderaxespad=0,
        handlelength=1.5,
    )
    fig.suptitle("Every published figure, by the period it covers", x=0.01, ha="left")
    fig.tight_layout()
    return fig


def plot_observation_pattern(view: ConstraintView) -> plt.Figure:
    """Which months each usable figure adds up: the design the monthly model is fitted to."""
    figures = view.figures.sort_values(["article", "period_start", "period_end", "figure_id"])
    weights = view.month_weights.loc[figures["figure_id"]]
    labels = [
        f"{article_label(r.article)}{'' if r.is_preferred else ', earlier release'}: "
        f"{r.period_start:%b %Y}–{r.period_end:%b %Y}"
        for r in figures.itertuples()
    ]
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, min(MAX_FIGURE_HEIGHT_IN, 1.6 + 0.145 * len(labels))))
    sns.heatmap(
        weights.to_numpy(),
        ax=ax,
        cmap="Blues",
        vmin=0,
        vmax=1,
        linewidths=0.2,
        linecolor="#eeeeee",
        cbar_kws={"label": "share of the month covered", "shrink": 0.4},
    )
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels, rotation=0, fontsize=7.5)
    month_labels = [f"{m:%b %Y}" if m.month == 1 else "" for m in weights.columns]
    ax.set_xticks(np.arange(len(month_labels)) + 0.5, month_labels, rotation=0)
    ax.set_xlabel("calendar month")
    ax.set_ylabel("")
    fig.suptitle("Months each usable court-filing figure adds up", x=0.01, ha="left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- trend report


def _month_mid(months: pd.Series) -> pd.Series:
    return pd.PeriodIndex(months, freq="M").to_timestamp() + pd.Timedelta(days=14)


def _draw_published(ax, figures: pd.DataFrame, colour, size: float = 6) -> None:
    """Published windows as what they are: a single month a point, a longer window a bar at its
    monthly average; lower and upper bounds as triangles pointing the way the truth may lie."""
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
                markersize=size,
                linestyle="none",
                zorder=5,
            )
        else:
            average = r.value / days * 30.44
            ax.plot([start, end], [average, average], color=colour, linewidth=2.5, zorder=4, solid_capstyle="butt")
            if marker != "o":
                ax.plot(start + (end - start) / 2, average, marker=marker, color=colour, markersize=size, zorder=5)


def _published_legend(ax, colour, figures: pd.DataFrame) -> None:
    ax.plot(
        [],
        [],
        color=colour,
        marker="o",
        linewidth=2.5,
        label="published figure (point, or bar for a longer period)",
    )
    qualifiers = set(figures["value_qualifier"])
    if "at_least" in qualifiers:
        ax.plot([], [], color=colour, marker="^", linestyle="none", label="published as “at least” (a lower bound)")
    if "at_most" in qualifiers:
        ax.plot([], [], color=colour, marker="v", linestyle="none", label="published as “at most” (an upper bound)")


def forecast_ceiling(monthly: pd.DataFrame, figures: pd.DataFrame) -> float | None:
    """The top of the monthly panel when the forecast's range would squash the observed period:
    1.3 times the highest observed range or published monthly average; None when it fits."""
    observed = monthly[~monthly["is_forecast"]]
    averages = [
        r.value / ((pd.Timestamp(r.period_end) - pd.Timestamp(r.period_start)).days + 1) * 30.44
        for r in figures.itertuples()
    ]
    top = 1.3 * max([observed["upper_95"].max(), *averages]) if len(observed) else None
    return top if top is not None and monthly["upper_95"].max() > top else None


def plot_monthly_trend(
    monthly: pd.DataFrame,
    figures: pd.DataFrame,
    break_month: str,
    running: pd.DataFrame,
    running_all: pd.DataFrame,
    running_figures: pd.DataFrame,
    title: str,
) -> plt.Figure:
    """Top: modelled monthly counts with 80/95% ranges, the trend before the break continued and the
    forecast; published figures as what they are. Bottom: running totals since the mobilisation,
    published against modelled (in the totals' own counting base, and all cases)."""
    colours = _colours()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PRINT_WIDTH_IN, 6.8), height_ratios=(3, 2), sharex=True)
    x = _month_mid(monthly["month"])
    observed = ~monthly["is_forecast"].to_numpy()
    for mask, alpha_scale, first in ((observed, 1.0, True), (~observed, 0.55, False)):
        if not mask.any():
            continue
        if not first and observed.any():  # join the forecast band to the last modelled month
            mask = mask.copy()
            mask[np.nonzero(~observed)[0][0] - 1] = True
        for level, shade in (("95", 0.15), ("80", 0.3)):
            top.fill_between(
                x[mask],
                monthly[f"lower_{level}"][mask],
                monthly[f"upper_{level}"][mask],
                color=colours["model"],
                alpha=shade * alpha_scale,
                linewidth=0,
                label=f"range ({level}%)" if first else None,
            )
        top.plot(
            x[mask],
            monthly["expected"][mask],
            color=colours["model"],
            linestyle="-" if first else "--",
            linewidth=2,
            label="model estimate" if first else "forecast (dashed, lighter range)",
        )
    after = pd.PeriodIndex(monthly["month"], freq="M") >= pd.Period(break_month, "M")
    top.plot(
        x[after],
        monthly["counterfactual_expected"][after],
        color=colours["trend"],
        linestyle=":",
        linewidth=2,
        label="trend before mobilisation, continued",
    )
    _draw_published(top, figures, colours["data"], size=7)
    _published_legend(top, colours["data"], figures)
    ceiling = forecast_ceiling(monthly, figures)
    top.set_ylim(0, ceiling)
    if ceiling is not None:
        top.annotate(
            "forecast range continues above",
            (x[-1], ceiling),
            ha="right",
            va="top",
            xytext=(0, -3),
            textcoords="offset points",
            color="#333",
        )
    top.set_ylabel("cases received per month")
    _mark_events(top, label=True)
    _shade_provisional(top, monthly)
    _legend_above(top)

    bottom.fill_between(
        running["month_end"],
        running["lower_95"],
        running["upper_95"],
        color=colours["model"],
        alpha=0.2,
        linewidth=0,
        label="model, as those totals count (range 95%)",
    )
    bottom.plot(running["month_end"], running["expected"], color=colours["model"], linewidth=2)
    bottom.plot(
        running_all["month_end"],
        running_all["expected"],
        color=colours["trend"],
        linewidth=1.5,
        linestyle="--",
        label="model, every case received",
    )
    if len(running_figures):
        bottom.plot(
            pd.to_datetime(running_figures["period_end"]),
            running_figures["value"],
            "o",
            color=colours["data"],
            markersize=6,
            label="published running total",
        )
    bottom.set_ylabel("cases since 21 Sep 2022")
    bottom.set_ylim(bottom=0)
    _mark_events(bottom, label=False)
    _legend_above(bottom)
    for ax in (top, bottom):
        _thousands(ax)
    _month_axis(bottom)
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def residual_labels(figures: pd.DataFrame) -> list[str]:
    """Each figure as a reader identifies it: its period and when it was published."""
    labels = []
    for r in figures.itertuples():
        start, end = pd.Timestamp(r.period_start), pd.Timestamp(r.period_end)
        period = f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}"
        when = f"{pd.Timestamp(r.source_date):%b %Y}" if r.source_date else "date unknown"
        labels.append(f"{period}, published {when}")
    return labels


def plot_residuals(figures: pd.DataFrame) -> plt.Figure:
    """Standardised residual of every figure the fit used, latest period at the top; coloured by
    the very quantity on the axis (beyond ±2 standard deviations or not)."""
    used = figures[figures["is_used"]].sort_values(["period_end", "period_start"]).copy()
    palette = sns.color_palette(PALETTE, 10)
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, min(MAX_FIGURE_HEIGHT_IN, 1.6 + 0.24 * len(used))))
    far = used["standardised_residual"].abs() > RESIDUAL_LIMIT
    colours = [palette[3] if is_far else palette[0] for is_far in far]
    ax.scatter(used["standardised_residual"], range(len(used)), c=colours, zorder=3)
    ax.set_yticks(range(len(used)), residual_labels(used))
    for edge in (-RESIDUAL_LIMIT, RESIDUAL_LIMIT):
        ax.axvline(edge, color="#888", linestyle="--", linewidth=1)
    ax.axvline(0, color="#444", linewidth=1)
    ax.set_xlabel("published minus expected, in standard deviations")
    ax.scatter([], [], color=palette[0], label="within two standard deviations")
    ax.scatter([], [], color=palette[3], label="further than two standard deviations")
    _legend_above(ax)
    fig.tight_layout()
    return fig


# Plain ratios a log axis is labelled with; the chart keeps those inside its range, so a narrow
# range still shows several (a cross-check within ±30% showed only "1×").
RATIO_TICKS = (0.1, 0.2, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 4, 5, 10)
RATIO_TICKS_COARSE = (0.1, 0.25, 0.5, 1, 2, 4, 10)


def _ratio_label(value: float, _) -> str:
    return f"{value:g}×"


def plot_validation(scores: pd.DataFrame) -> plt.Figure:
    """Each held-out figure against its 95% predictive range, on the scale of the prediction
    (value / predicted median), so figures of 5 and of 16,000 cases share one axis; the log axis
    is labelled in plain ratios (½×, 1×, 2×)."""
    palette = sns.color_palette(PALETTE, 10)
    scored = scores.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, min(MAX_FIGURE_HEIGHT_IN, 1.6 + 0.24 * len(scored))))
    median = scored["predicted_median"].clip(lower=1e-9)
    y = np.arange(len(scored))
    ax.hlines(
        y,
        scored["lower_95"] / median,
        scored["upper_95"] / median,
        color=palette[0],
        linewidth=3,
        label="95% predictive range",
    )
    verdicts = (
        scored["verdict"] if "verdict" in scored else scored["is_covered"].map({True: CONSISTENT, False: INCONSISTENT})
    )
    # green, amber, red: the amber of the palette and a dark red, told apart by lightness as well
    colour_of = {CONSISTENT: palette[2], IN_TENSION: palette[1], INCONSISTENT: "#a50f15"}
    words = {
        CONSISTENT: "consistent",
        IN_TENSION: "in tension",
        INCONSISTENT: "not consistent",
    }
    markers = scored["value_qualifier"].map({"at_least": ">", "at_most": "<"}).fillna("o")
    for yi, value, said, marker in zip(y, scored["value"] / median, verdicts, markers):
        ax.plot(value, yi, marker=marker, color=colour_of[said], markersize=7, linestyle="none", zorder=3)
    for said in (CONSISTENT, IN_TENSION, INCONSISTENT):
        if (verdicts == said).any():
            ax.plot([], [], "o", color=colour_of[said], label=f"published value, {words[said]}")
    if (markers != "o").any():
        ax.plot([], [], ">", color="#555", linestyle="none", label="“at least” / ◁ “at most”")
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ticks = [t for t in RATIO_TICKS if low <= t <= high]
    if len(ticks) > 7:  # a wide range: the coarse ticks alone
        ticks = [t for t in RATIO_TICKS_COARSE if low <= t <= high]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_label))
    ax.axvline(1, color="#444", linewidth=1)
    ax.set_yticks(y, scored["label"])
    ax.set_xlabel("published value relative to the predicted median")
    ax.invert_yaxis()
    _legend_above(ax)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- summary report


def plot_articles_side_by_side(
    monthly: pd.DataFrame, figures: pd.DataFrame, break_month: str, titles: dict[str, str]
) -> plt.Figure:
    """One panel per article, each on its own scale (their sizes differ tenfold), sharing time."""
    colours = _colours()
    articles = list(titles)
    fig, axes = plt.subplots(len(articles), 1, figsize=(PRINT_WIDTH_IN, 2.2 * len(articles) + 0.9), sharex=True)
    for index, (ax, article) in enumerate(zip(np.atleast_1d(axes), articles)):
        rows = monthly[(monthly["article"] == article) & ~monthly["is_forecast"]]
        x = _month_mid(rows["month"])
        ax.fill_between(x, rows["lower_95"], rows["upper_95"], color=colours["model"], alpha=0.2, linewidth=0)
        ax.plot(x, rows["expected"], color=colours["model"], linewidth=2)
        _draw_published(ax, figures[figures["article"] == article], colours["data"])
        _mark_events(ax, label=index == 0)
        _shade_provisional(ax, rows, label=index == 0)
        ax.set_title(titles[article], loc="left")
        ax.set_ylabel("cases per month")
        ax.set_ylim(bottom=0)
        _thousands(ax)
    first = np.atleast_1d(axes)[0]
    first.plot([], [], color=colours["model"], linewidth=2, label="model estimate with its range (95%)")
    _published_legend(first, colours["data"], figures)
    first.legend(loc="lower left", bbox_to_anchor=(0, 1.18), ncol=1, frameon=False, borderaxespad=0)
    _month_axis(np.atleast_1d(axes)[-1])
    fig.tight_layout()
    return fig


def plot_requests_against_filings(requests_monthly: pd.DataFrame, windows, filings: pd.DataFrame) -> plt.Figure:
    """Top: court filings (model). Bottom: help requests as published (disjoint windows) with their
    fitted trend. Two panels rather than two y-axes on one, which would invite reading the
    crossing of the lines as meaningful."""
    colours = _colours()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PRINT_WIDTH_IN, 6.8), sharex=True)
    x = _month_mid(filings["month"])
    top.fill_between(
        x, filings["lower_95"], filings["upper_95"], color=colours["model"], alpha=0.2, linewidth=0, label="range (95%)"
    )
    top.plot(x, filings["expected"], color=colours["model"], linewidth=2, label="model estimate")
    top.set_ylabel("court cases per month")
    top.set_title("AWOL and desertion cases received by military courts", loc="left", pad=22)
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, borderaxespad=0)
    x = _month_mid(requests_monthly["month"])
    bottom.fill_between(
        x,
        requests_monthly["lower_95"],
        requests_monthly["upper_95"],
        color=colours["requests"],
        alpha=0.2,
        linewidth=0,
        label="trend, with its 95% band",
    )
    bottom.plot(x, requests_monthly["expected"], color=colours["requests"], linewidth=2)
    for weights, value in zip(windows.weights, windows.value):
        covered = windows.months[weights > 0]
        average = value / weights.sum()
        if len(covered) == 1:
            bottom.plot(
                covered[0].start_time + pd.Timedelta(days=14), value, "o", color=colours["data"], markersize=7, zorder=5
            )
        else:
            for month in covered:  # a disjoint window may skip months: one bar piece per month
                bottom.plot(
                    [month.start_time, month.end_time],
                    [average, average],
                    color=colours["data"],
                    linewidth=2.5,
                    zorder=4,
                    solid_capstyle="butt",
                )
    bottom.plot(
        [],
        [],
        color=colours["data"],
        marker="o",
        linewidth=2.5,
        label="published requests (point: a month; bar: average over a period)",
    )
    bottom.set_ylabel("requests per month")
    bottom.set_title("Requests for help to desert received by Idite Lesom", loc="left", pad=22)
    bottom.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, borderaxespad=0)
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        _thousands(ax)
    _month_axis(bottom, (1, 4, 7, 10))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- methods report


def plot_break_profile(profile: pd.DataFrame, model_break: str) -> plt.Figure:
    """How much worse the model fits with its break at each candidate month than at the best one;
    months under the dashed line form the 95% likelihood-ratio set."""
    colours = _colours()
    months = pd.PeriodIndex(profile["break_month"], freq="M").to_timestamp()
    fig, ax = plt.subplots(figsize=(PRINT_WIDTH_IN, 3.4))
    inside = profile["is_in_95_interval"].astype(bool).to_numpy()
    ax.bar(months, profile["drop_from_best"], width=20, color=[colours["model"] if i else "#bbbbbb" for i in inside])
    ax.axhline(1.92, color="#444", linestyle="--", linewidth=1)
    ax.annotate("95% set: below this line", (months[0], 1.92), xytext=(0, 3), textcoords="offset points", color="#333")
    ax.axvline(pd.Period(model_break, "M").to_timestamp(), color=colours["data"], linewidth=1.5)
    ax.annotate(
        "the model's break",
        (pd.Period(model_break, "M").to_timestamp(), 1),
        xycoords=("data", "axes fraction"),
        xytext=(3, -10),
        textcoords="offset points",
        color=colours["data"],
    )
    ax.set_ylabel("fit lost against the best month\n(log-likelihood)")
    _month_axis(ax, (1, 4, 7, 10))
    fig.tight_layout()
    return fig
