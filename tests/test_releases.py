"""How complete each release was (model.releases): the shared lag's share, the pairs' own
measurement and the release's own lag."""

from __future__ import annotations

import numpy as np
import pytest

from milcourts.inputs.constraints import build_constraint_view
from milcourts.inputs.ledger import load_ledger
from milcourts.model.releases import LAST_DAYS, OWN_LAG_PRIOR_LOG_DAYS, release_completeness_table, share_posted
from milcourts.paths import LEDGER_CSV
from milcourts.products import public


def test_share_posted_is_the_average_over_the_last_days_of_the_lag_curve():
    # day by day, independently of the closed form: a case received k days before the release's
    # last counted day, published d days after that day, is posted with 1 - exp(-(d + k)/tau)
    tau, d = 4.0, 2
    by_day = [1 - np.exp(-(d + k) / tau) for k in range(LAST_DAYS)]
    assert share_posted(np.array([d]), np.array([tau]))[0, 0] == pytest.approx(np.mean(by_day))
    shares = share_posted(np.array([0, 10, 400]), np.array([1.0, 30.0]))
    assert shares.shape == (2, 3)
    assert (np.diff(shares, axis=1) > 0).all()  # later releases are more complete
    assert (shares[0] > shares[1]).all()  # a longer lag posts less
    assert shares[0, 2] == pytest.approx(1.0)


def test_the_own_lag_prior_allows_weeks():
    median = np.exp(OWN_LAG_PRIOR_LOG_DAYS[0])
    lo, hi = (np.exp(OWN_LAG_PRIOR_LOG_DAYS[0] + z * OWN_LAG_PRIOR_LOG_DAYS[1]) for z in (-1.96, 1.96))
    assert 6 < median < 8 and lo == pytest.approx(1.0) and hi == pytest.approx(50.0)


@pytest.mark.slow
def test_a_release_that_had_posted_less_gets_a_longer_own_lag():
    """The real ledger with the three earlier vintages of 2023 (29 December 2023) lowered to what a
    lag of ten days would show on a flat series: 2 of the later figures' 365 days are outside their
    window, and a 10-day lag misses about 10 of the other 363 days' worth, so (363 - 10) / 365 of
    the later figure. The series grew through 2023, so the missed last days are its busiest and the
    same shortfall means a somewhat shorter lag: several days, against under 3 for the real pairs."""
    from milcourts.model.fit import fit_filings_model
    from milcourts.model.simulate import simulate

    ledger = load_ledger(LEDGER_CSV)
    later = {"F042": 5092, "F044": 156, "F045": 428}  # 4 March 2024, the same three articles' 2023
    for early, value in later.items():
        ledger.loc[ledger["figure_id"] == early, "value"] = round(value * (363 - 10) / 365)
    # the same day's narrower count of Art. 337 (5,006, set aside as a narrower base) lowered alike,
    # or it would become the wider one and replace F042
    ledger.loc[ledger["figure_id"] == "F047", "value"] = round(5006 * (363 - 10) / 365)
    fitted = fit_filings_model(build_constraint_view(ledger))
    table = release_completeness_table(fitted, simulate(fitted, n_draws=500))

    revised = table[table["revised_pairs"] > 0]
    assert list(revised["release_date"]) == ["2023-12-29"]
    row = revised.iloc[0]
    assert row["revised_pairs"] == 3 and row["later_release_date"] == "2024-03-04"
    k, n = sum(round(v * 353 / 365) for v in later.values()), sum(later.values())
    assert (row["cases_first_published"], row["cases_published_later"]) == (k, n)
    assert row["observed_share_of_later"] == pytest.approx(k / n)
    assert row["observed_share_of_later_lower_95"] < k / n < row["observed_share_of_later_upper_95"]
    # the unchanged ledger's pairs put the lag at under 3 days; these at several days
    assert 4 < row["own_lag_days"] < 15
    assert row["own_lag_lower_95"] > 3 and row["own_lag_upper_95"] < 25
    assert row["own_share_posted_lower_95"] < row["own_share_posted"] < row["own_share_posted_upper_95"]
    # the model (one delay for all) sees the same pairs: its expected share is close to the observed
    assert row["expected_share_of_later"] == pytest.approx(k / n, abs=0.01)
    # every release has a row, and one without pairs has no measurement of its own
    assert len(table) == len(np.unique(fitted.obs.release_dates))
    latest = table.iloc[-1]
    assert latest["release_date"] == "2024-12-27" and latest["revised_pairs"] == 0
    assert np.isnan(latest["own_lag_days"])
    assert latest["share_posted_lower_95"] < latest["share_posted"] < latest["share_posted_upper_95"] < 1
    # as published: every declared column, units in the names
    published = public.public_frame(public.RELEASE_COMPLETENESS, {"release_completeness": table})
    assert published.shape == (len(table), len(public.RELEASE_COMPLETENESS.fields))
