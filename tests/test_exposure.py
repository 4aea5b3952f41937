"""Month exposure: calendar days, or working days of the Russian production calendar."""

from __future__ import annotations

import pandas as pd
import pytest

from milcourts.inputs.exposure import month_exposure


def test_working_days_follow_the_official_production_calendar():
    # Totals and months as decreed (Government resolutions on the transfer of days off); 2024 has
    # working Saturdays on 27 Apr, 2 Nov and 28 Dec, which weekday-minus-holiday counting misses.
    months_2024 = pd.period_range("2024-01", "2024-12", freq="M")
    working = month_exposure(months_2024, "working_days")
    assert working.sum() == 248
    assert list(working[:5]) == [17, 20, 20, 21, 20]
    for year in (2021, 2022, 2023):
        assert month_exposure(pd.period_range(f"{year}-01", f"{year}-12", freq="M"), "working_days").sum() == 247


def test_calendar_days_and_unknown_exposure():
    assert list(month_exposure(pd.period_range("2024-01", "2024-03", freq="M"), "calendar_days")) == [31, 29, 31]
    with pytest.raises(ValueError, match="exposure must be one of calendar_days, working_days, got 'hours'"):
        month_exposure(pd.period_range("2024-01", "2024-01", freq="M"), "hours")
