"""Exposure of each month: how much time courts had to receive cases.

The model's monthly rate is per unit of exposure. Calendar days are the default; working days
(weekdays minus Russian public holidays, plus the Saturdays made working days by the government's
transfer decrees) are the alternative the sensitivity table checks, because court registries
receive cases on working days and January (eight days of New Year holidays) and May have
noticeably fewer of them. The `holidays` package carries the official production calendar,
transferred working Saturdays included (2024: 248 working days, as decreed).
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import holidays
import numpy as np
import pandas as pd

EXPOSURES = ("calendar_days", "working_days")


@cache
def _russian_calendar(first_year: int, last_year: int):
    return holidays.country_holidays("RU", years=range(first_year, last_year + 1))


def working_days(month: pd.Period) -> int:
    """Working days of a month in the Russian production calendar."""
    calendar = _russian_calendar(month.year, month.year)
    first = dt.date(month.year, month.month, 1)
    return calendar.get_working_days_count(first, first.replace(day=month.days_in_month))


def month_exposure(months: pd.PeriodIndex, exposure: str) -> np.ndarray:
    if exposure == "calendar_days":
        return np.array([m.days_in_month for m in months], dtype=float)
    if exposure == "working_days":
        return np.array([working_days(m) for m in months], dtype=float)
    raise ValueError(f"exposure must be one of {', '.join(EXPOSURES)}, got {exposure!r}")
