"""The tests' oracle (tests/oracle.py) on the documented crm.deal.get answer and on offsets
either side of UTC: a wrong oracle would make every suite that uses it wrong."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.oracle import expected_row, portal_day, portal_instant_utc, portal_money

DOCS_DEAL = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "crm_deal_get_docs.json")
                       .read_text(encoding="utf-8"))["result"]


def test_documented_deal():
    assert expected_row(DOCS_DEAL) == {
        "title": "Новая сделка #1",
        "stage_id": "PREPARATION",
        "category_id": 0,
        "amount": Decimal("1000000.00"),
        "currency_id": "EUR",
        "close_date": date(2024, 9, 9),  # CLOSEDATE 2024-09-09T02:00:00+02:00
        "comments": "[B]Пример комментария[/B]",
        "date_modify": datetime(2024, 8, 30, 12, 29),  # 14:29 at +02:00
        "deleted": False,
    }


@pytest.mark.parametrize(("text", "day"), [
    ("2024-09-09T00:00:00+03:00", date(2024, 9, 9)),  # the 8th in UTC
    ("2024-09-09T00:00:00-05:00", date(2024, 9, 9)),
    ("2024-12-31T00:00:00-10:00", date(2024, 12, 31)),  # local midnight, 10:00 UTC
    # UTC midnight shown in the portal's offset (Bitrix24's ConvertDate): the written date is
    # the evening before on a portal west of UTC
    ("2024-12-31T14:00:00-10:00", date(2025, 1, 1)),
    ("2027-01-14T19:00:00-05:00", date(2027, 1, 15)),
    ("2024-09-09T02:00:00+02:00", date(2024, 9, 9)),
    ("", None),
    (None, None),
])
def test_a_date_field_is_the_portal_day(text, day):
    assert portal_day(text) == day


@pytest.mark.parametrize(("text", "utc"), [
    ("2024-08-30T14:29:00+02:00", datetime(2024, 8, 30, 12, 29)),
    ("2024-03-10T01:30:00-05:00", datetime(2024, 3, 10, 6, 30)),
    ("2024-01-01T00:15:00+05:45", datetime(2023, 12, 31, 18, 30)),
    ("2024-01-01T00:15:00Z", datetime(2024, 1, 1, 0, 15)),
])
def test_a_datetime_is_naive_utc(text, utc):
    assert portal_instant_utc(text) == utc


def test_money_keeps_every_digit():
    assert portal_money("1000000.10") == Decimal("1000000.10")
    assert str(portal_money("0.10")) == "0.10"
    assert portal_money("") == 0 and portal_money(None) == 0
    with pytest.raises(AssertionError):
        portal_money("1 000,50")  # the portal never sends this: the oracle says so
