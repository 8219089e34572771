"""A date field is the portal's day, however the portal rendered it (values worked out by hand)."""

from __future__ import annotations

from datetime import date

import pytest

from deal_monitor.bitrix.deal import portal_date


@pytest.mark.parametrize(("text", "day"), [
    ("2024-09-09T02:00:00+02:00", date(2024, 9, 9)),  # docs fixture: ConvertDate, UTC midnight
    ("2027-01-14T19:00:00-05:00", date(2027, 1, 15)),  # New York, winter: 00:00 UTC on the 15th
    ("2027-07-14T19:00:00-04:00", date(2027, 7, 15)),  # summer day asked in winter: 23:00 UTC
    ("2027-03-15T01:00:00+02:00", date(2027, 3, 15)),  # an hour past UTC midnight (DST)
    ("2024-09-09T00:00:00+03:00", date(2024, 9, 9)),  # local midnight: the date as written
    ("2027-01-15T00:00:00-05:00", date(2027, 1, 15)),
    ("2024-08-30T14:29:00+02:00", date(2024, 8, 30)),  # a real datetime: the date as written
    ("2024-09-09", date(2024, 9, 9)),
    ("", None),
    ("not a date", None),
])
def test_portal_date(text, day):
    assert portal_date(text) == day
