"""The domain's words and dates, defined once: articles and their labels, series, the mobilisation.

Everything that names an article to a reader, tests a figure's series, or places the break reads
it from here, so a label or a date is changed in one place and cannot drift between reports.
"""

from __future__ import annotations

import pandas as pd

# Criminal Code articles whose cases the model follows, in the order of its arrays. Art. 337 (AWOL)
# has by far the most figures and is the reference series the small ones are shrunk towards.
ARTICLES: tuple[str, ...] = ("337", "338", "332")
# The ledger's code for a figure published for the three articles together.
ALL_ARTICLES = "all_refusal"
# Every value the ledger's `article` column may take ("na": the figure is not about one article).
LEDGER_ARTICLES: tuple[str, ...] = (*ARTICLES, ALL_ARTICLES, "na")

# What a reader sees. One style everywhere: the plain name first, the article in brackets.
ARTICLE_LABELS = {
    "337": "AWOL (Art. 337)",
    "338": "desertion (Art. 338)",
    "332": "refusing orders (Art. 332)",
    ALL_ARTICLES: "all three articles",
    "na": "no single article",
}
# Short forms for table rows and chart panels where a line is narrow.
ARTICLE_SHORT_LABELS = {"337": "Art. 337", "338": "Art. 338", "332": "Art. 332", ALL_ARTICLES: "Arts. 332, 337, 338"}


def article_label(article: str, capitalised: bool = False) -> str:
    """The reader's name of an article ("AWOL (Art. 337)"); unknown codes are returned as given."""
    label = ARTICLE_LABELS.get(article, article)
    return label[:1].upper() + label[1:] if capitalised else label


# Series of the ledger (`series` column). Court filings (cases received by military courts) are
# what the monthly model is fitted to; help requests are Idite Lesom's counts.
COURT_FILINGS = "court_filings"
HELP_REQUESTS = "help_requests"
SERIES: tuple[str, ...] = (
    COURT_FILINGS,
    "court_verdicts",
    "convictions_official",
    "criminal_cases_opened",
    HELP_REQUESTS,
    "other",
)

# The ledger's codes in a reader's words.
SERIES_WORDS = {
    COURT_FILINGS: "cases received by military courts",
    "court_verdicts": "verdicts",
    "convictions_official": "official conviction statistics",
    "criminal_cases_opened": "criminal cases opened",
    HELP_REQUESTS: "requests for help (Idite Lesom)",
    "other": "other",
}
QUALIFIER_WORDS = {"exact": "exact", "approx": "about", "at_least": "at least", "at_most": "at most"}
MEASURE_WORDS = {
    "count": "count for a period",
    "cumulative": "running total",
    "count_persons": "persons, for a period",
    "cumulative_persons": "persons, running total",
    "daily_rate": "per day",
    "weekly_rate": "per week",
    "monthly_rate": "per month",
    "share": "share",
    "pct_change": "percentage change",
    "ratio_vs_prior_year": "ratio to the year before",
    "count_helped": "people helped, for a period",
    "cumulative_helped": "people helped, running total",
    "cumulative_advised": "people advised, running total",
    "cumulative_counseled": "people counselled, running total",
}

# Dates that frame every report.
INVASION = pd.Timestamp("2022-02-24")  # start of "since the invasion" running totals
MOBILISATION = pd.Timestamp("2022-09-21")  # partial mobilisation announced; "since mobilisation" totals
# Federal Law 365-FZ of 24 September 2022 added mobilisation and wartime offences to Art. 332, 337
# and 338 (new parts 2.1, 3.1, 5 and their kind) and the counting base of the early running totals.
CRIMINAL_CODE_AMENDMENTS = pd.Timestamp("2022-09-24")
# The model's break: the first full month after mobilisation was announced.
DEFAULT_BREAK_MONTH = "2022-10"

# Reports other reports link to by name (runs of reports.yaml; a test keeps them there).
AUDIT_REPORT = "01-ledger-audit"
METHODS_REPORT = "04-methods"
