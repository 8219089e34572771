"""Parsing and verifying event bodies: both real envelopes and hostile variants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deal_monitor.bitrix import phpform
from deal_monitor.bitrix.events import Rejection, parse_id, read_event
from tests.conftest import fixture_bytes

APP_BODY = fixture_bytes("event_oncrmdealupdate_app_DERIVED.urlencoded.txt")
APP_TOKEN = "51856fefc120afa4b628cc82d3935cce"
HOOK_BODY = fixture_bytes("event_oncrmdealadd_outgoing_webhook_DERIVED.urlencoded.txt")
HOOK_TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"


def test_app_envelope_is_read():
    ev = read_event(APP_BODY, APP_TOKEN)
    assert (ev.event, ev.deal_id, ev.handler_id, ev.ts) == ("ONCRMDEALUPDATE", 759, "201", 1736405807)
    assert ev.member_id == "a223c6b3710f85df22e9377d6c4f7553"


def test_outgoing_webhook_envelope_is_read():
    ev = read_event(HOOK_BODY, HOOK_TOKEN, member_id="d897063e1ce7c5eb9f04b9751eef5915")
    assert (ev.event, ev.deal_id, ev.domain) == ("ONCRMDEALADD", 7405, "some-domain.bitrix24.ru")


def test_real_contact_capture_parses_with_its_token():
    body = fixture_bytes("event_oncrmcontactadd_app_real.urlencoded.txt")
    ev = read_event(body, "3c6c9248ec54af6bea1159b43ee0ab32")
    assert ev.event == "ONCRMCONTACTADD" and ev.deal_id is None  # not a deal event: no ID needed


@pytest.mark.parametrize(
    "token",
    ["", "51856fefc120afa4b628cc82d3935cc", "51856FEFC120AFA4B628CC82D3935CCE",
     "51856fefc120afa4b628cc82d3935cce ", "51856fefc120afa4b628cc82d3935cce\x00"],
)
def test_wrong_token_is_401(token):
    body = APP_BODY.replace(APP_TOKEN.encode(), phpform.encode({"x": token})[2:].encode())
    with pytest.raises(Rejection) as info:
        read_event(body, APP_TOKEN)
    assert info.value.status in (401, 400)
    if token.strip() == token and "\x00" not in token:
        assert info.value.status == 401


def test_unconfigured_token_accepts_nothing():
    with pytest.raises(Rejection) as info:
        read_event(APP_BODY, "")
    assert info.value.status == 401


def test_token_given_twice_is_400():
    body = APP_BODY + b"&auth%5Bapplication_token%5D=" + APP_TOKEN.encode()
    with pytest.raises(Rejection) as info:
        read_event(body, APP_TOKEN)
    assert info.value.status == 400


def test_other_portal_is_403():
    with pytest.raises(Rejection) as info:
        read_event(APP_BODY, APP_TOKEN, member_id="0" * 32)
    assert info.value.status == 403
    with pytest.raises(Rejection) as info:
        read_event(APP_BODY, APP_TOKEN, domain="evil.example")
    assert info.value.status == 403


@pytest.mark.parametrize(
    "raw_id",
    ["", "abc", "12abc", "١٢٣", "１２", " 12 ", "+12", "1_000", "012", "0", "-5", "1e3",
     "99999999999999999999999", "9223372036854775808"],
)
def test_bad_deal_ids_are_400(raw_id):
    body = APP_BODY.replace(b"%5BID%5D=759", b"%5BID%5D=" + phpform.encode({"x": raw_id})[2:].encode())
    with pytest.raises(Rejection) as info:
        read_event(body, APP_TOKEN)
    assert info.value.status == 400


def test_largest_id_is_accepted():
    assert parse_id("9223372036854775807") == 2**63 - 1


@pytest.mark.parametrize(
    "body",
    [b"%zz", b"a=%", b"a=%E0%A4", b"a=%FF%FE", b"a" + b"[a]" * 1000 + b"=1",
     b"&".join(b"f%d=1" % i for i in range(10000))],
)
def test_malformed_bodies_are_400(body):
    with pytest.raises(Rejection) as info:
        read_event(body, APP_TOKEN)
    assert info.value.status == 400


def test_missing_id_is_400_after_token_check():
    body = APP_BODY.replace(b"data%5BFIELDS%5D%5BID%5D=759&", b"")
    with pytest.raises(Rejection) as info:
        read_event(body, APP_TOKEN)
    assert info.value.status == 400
    with pytest.raises(Rejection) as info:
        read_event(body, "another-token-entirely")
    assert info.value.status == 401


def test_duplicate_deliveries_share_a_dedup_key():
    assert read_event(APP_BODY, APP_TOKEN).dedup_key == read_event(APP_BODY, APP_TOKEN).dedup_key
    other = APP_BODY.replace(b"ts=1736405807", b"ts=1736405808")
    assert read_event(other, APP_TOKEN).dedup_key != read_event(APP_BODY, APP_TOKEN).dedup_key


@given(st.binary(max_size=600))
def test_no_byte_string_makes_the_reader_raise_anything_else(body):
    try:
        read_event(body, APP_TOKEN)
    except Rejection as exc:
        assert exc.status in (400, 401, 403)


@given(
    st.dictionaries(
        st.text(alphabet=st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)),
                min_size=1, max_size=8),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
        max_size=10,
    )
)
def test_form_round_trip(params):
    assert phpform.decode(phpform.encode(params), max_fields=100) == params
