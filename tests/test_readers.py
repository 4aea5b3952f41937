"""What a reader of the PDF relies on: charts legible at A4, colours that mean what the axis
says, bounds judged honestly, and prose free of code names (the built reports are scanned in the
published reports' check and the synthetic report tests)."""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from milcourts import paths  # noqa: E402
from milcourts.checks.validation import CONSISTENT, IN_TENSION, INCONSISTENT, verdict  # noqa: E402
from milcourts.views import plotting, reporting  # noqa: E402
from milcourts.views.audit import load_audit  # noqa: E402

# The A4 text block the template prints charts into: 210 mm less two 16 mm margins, in points.
TEXT_BLOCK_PT = (210 - 2 * 16) / 25.4 * 72
# Identifier-shaped tokens: snake_case names, ledger ids, file names. None may reach a reader's
# eye outside the sources appendix (and the audit's appendix, which lists figures by id).
IDENTIFIER = re.compile(r"\b[a-z]+_[a-z_]+\b|\bF\d{3,}\b|\.csv\b|\.json\b")


def reader_text_outside_appendix(html: str) -> str:
    """The visible text of a report before its sources or appendix: tags, hrefs and scripts gone."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    body = re.sub(r"<svg\b.*?</svg>", " ", body, flags=re.S)  # chart text is drawn as paths
    text = re.sub(r"<[^>]+>", " ", body)
    cut = min([m.start() for m in re.finditer(r"\b(Sources|Appendix: the figures)\b", text)] or [len(text)])
    return text[:cut]


def identifiers_in(html: str) -> list[str]:
    return sorted(set(IDENTIFIER.findall(reader_text_outside_appendix(html))))


# Statisticians' words that the reports for readers replace by plain ones (the methods report, written
# for technical readers, may use them and defines them); "CI" where the reports say "95% interval".
JARGON = re.compile(
    r"\b(deviance|elasticity|quasi-Poisson|Laplace|ridge|posterior|Pearson|rate ratio|chi-square|"
    r"penalised likelihood|standard errors?|regress\w*)\b|\bCI\b",
    flags=re.IGNORECASE,
)


def jargon_in(html: str) -> list[str]:
    return sorted({m.group(0).lower() for m in JARGON.finditer(reader_text_outside_appendix(html))})


def test_the_identifier_scan_finds_what_it_is_for():
    html = "<p>fit_to_ledger.csv says F064 is off</p><a href='x_y.csv'>Data</a><h2>Sources</h2><p>F001</p>"
    assert identifiers_in(html) == [".csv", "F064", "fit_to_ledger"]


def test_the_jargon_scan_finds_what_it_is_for():
    html = "<p>The level rate ratio (CI 2 to 3) by quasi-Poisson deviance</p><h2>Sources</h2><p>Laplace</p>"
    assert jargon_in(html) == ["ci", "deviance", "quasi-poisson", "rate ratio"]
    assert jargon_in("<p>Circuit courts received cases; a ridgeline</p>") == []


# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("value", "qualifier", "expected"),
    [
        (1000, "at_least", IN_TENSION),  # the reported case: median 724, "at least 1,000"
        (600, "at_least", CONSISTENT),  # the prediction mostly meets it
        (5000, "at_least", INCONSISTENT),  # nothing of the prediction reaches it
        (600, "at_most", IN_TENSION),
        (900, "at_most", CONSISTENT),
        (724, "exact", CONSISTENT),
        (5000, "exact", INCONSISTENT),
        (750, "approx", CONSISTENT),
    ],
)
def test_a_bound_agrees_only_when_the_prediction_meets_it_more_likely_than_not(value, qualifier, expected):
    predicted = np.random.default_rng(1).lognormal(np.log(724), 0.2, 20_000)  # median 724, 97.5% near 1,070
    assert verdict(value, qualifier, predicted) == expected


# ----------------------------------------------------------------------------- charts


def _residual_figures() -> pd.DataFrame:
    residuals = [-0.9, -1.05, 1.2, -2.35, 2.6]
    return pd.DataFrame(
        {
            "figure_id": [f"F{i:03d}" for i in range(len(residuals))],
            "is_used": True,
            "period_start": "2023-01-01",
            "period_end": [f"2023-0{i + 1}-28" for i in range(len(residuals))],
            "source_date": "2024-03-04",
            "standardised_residual": residuals,
            # the old colouring read this column, which measures something else
            "is_inside_95": [False, False, False, True, True],
        }
    )


def test_residual_colours_follow_the_plotted_residual():
    """Residuals of -0.9, -1.05 and +1.2 were once coloured 'outside', -2.35 'inside'."""
    fig = plotting.plot_residuals(_residual_figures())
    points = fig.axes[0].collections[0]
    colours = [tuple(np.round(c[:3], 3)) for c in points.get_facecolors()]
    near, far = colours[0], colours[3]
    assert near != far
    assert [c == far for c in colours] == [False, False, False, True, True]


def _printed_sizes(fig) -> tuple[float, list[float]]:
    """The chart's width as saved (tight box, points) and the size of every visible text as printed
    in the A4 text block (the template stretches the chart to the block's width)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    width_pt = float(re.search(r'width="([\d.]+)pt"', buffer.getvalue()).group(1))
    scale = TEXT_BLOCK_PT / width_pt
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return width_pt, [t.get_fontsize() * scale for t in texts]


def _charts() -> dict[str, object]:
    reporting.setup_report_style()
    audit = load_audit(paths.LEDGER_CSV)
    months = pd.period_range("2021-01", "2025-06", freq="M").astype(str)
    n = len(months)
    expected = np.linspace(40, 800, n)
    monthly = pd.DataFrame(
        {
            "article": "337",
            "month": months,
            "expected": expected,
            "lower_80": expected * 0.8,
            "upper_80": expected * 1.2,
            "lower_95": expected * 0.6,
            "upper_95": expected * np.linspace(1.4, 4, n),
            "is_forecast": np.arange(n) >= n - 6,
            "counterfactual_expected": np.linspace(40, 150, n),
        }
    )
    figures = pd.DataFrame(
        {
            "period_start": ["2023-01-01", "2024-03-01"],
            "period_end": ["2023-12-31", "2024-03-31"],
            "value": [5092.0, 640.0],
            "value_qualifier": ["exact", "at_least"],
            "article": "337",
        }
    )
    running = pd.DataFrame(
        {
            "month_end": pd.date_range("2022-09-30", periods=34, freq="ME"),
            "expected": np.linspace(0, 17000, 34),
            "lower_95": np.linspace(0, 15000, 34),
            "upper_95": np.linspace(0, 19000, 34),
        }
    )
    scores = pd.DataFrame(
        {
            "label": ["Art. 337, Mar 2023: known Apr 2023", "Arts. 332, 337, 338, 2023: all others"],
            "value": [400.0, 1000.0],
            "value_qualifier": ["approx", "at_least"],
            "predicted_median": [350.0, 724.0],
            "lower_95": [237.0, 500.0],
            "upper_95": [583.0, 1070.0],
            "is_covered": [True, False],
        }
    )
    profile = pd.DataFrame(
        {
            "break_month": pd.period_range("2022-07", "2023-06", freq="M").astype(str),
            "drop_from_best": np.linspace(8, 0, 12),
            "is_in_95_interval": [False] * 10 + [True] * 2,
            "penalised_loglik": np.linspace(-260, -250, 12),
        }
    )
    return {
        "ledger timeline": plotting.plot_ledger_timeline(audit.ledger),
        "observation pattern": plotting.plot_observation_pattern(audit.view),
        "monthly trend": plotting.plot_monthly_trend(
            monthly,
            figures,
            "2022-10",
            running,
            running,
            figures.iloc[:0],
            "AWOL (Art. 337): cases received by military courts",
        ),
        "residuals": plotting.plot_residuals(_residual_figures()),
        "validation": plotting.plot_validation(scores),
        "articles side by side": plotting.plot_articles_side_by_side(
            pd.concat([monthly.assign(article=a) for a in ("337", "338", "332")]),
            figures,
            "2022-10",
            {"337": "AWOL (Art. 337)", "338": "Desertion (Art. 338)", "332": "Refusing orders (Art. 332)"},
        ),
        "break profile": plotting.plot_break_profile(profile, "2022-10"),
    }


CHARTS = [
    "ledger timeline",
    "observation pattern",
    "monthly trend",
    "residuals",
    "validation",
    "articles side by side",
    "break profile",
]


@pytest.fixture(scope="module")
def charts():
    return _charts()


@pytest.mark.parametrize("name", CHARTS)
def test_every_chart_text_is_at_least_7_pt_in_print(charts, name):
    fig = charts[name]
    width_pt, sizes = _printed_sizes(fig)
    assert fig.get_size_inches()[0] <= plotting.PRINT_WIDTH_IN + 1e-6
    assert min(sizes) >= 7.0, f"{name}: smallest printed text {min(sizes):.1f} pt (chart {width_pt:.0f} pt wide)"


def test_a_forecast_range_too_tall_is_cut_and_said():
    months = pd.period_range("2024-01", "2025-06", freq="M").astype(str)
    expected = np.full(len(months), 600.0)
    monthly = pd.DataFrame(
        {"month": months, "expected": expected, "upper_95": expected * 1.3, "is_forecast": np.arange(len(months)) >= 12}
    )
    monthly.loc[monthly["is_forecast"], "upper_95"] = 9000.0
    figures = pd.DataFrame({"period_start": ["2024-03-01"], "period_end": ["2024-03-31"], "value": [640.0]})
    ceiling = plotting.forecast_ceiling(monthly, figures)
    assert ceiling == pytest.approx(1.3 * 780)
    monthly["upper_95"] = 700.0
    assert plotting.forecast_ceiling(monthly, figures) is None
