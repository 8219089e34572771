"""Real PHP ``http_build_query`` output, read by both form codecs (the app's and the simulator's).

The simulator has its own codec (``deal_monitor/simulator/formcodec.py``) so the wire format is
not shared with the app by construction; this file holds both to bytes PHP produced:

- ``PHP_MANUAL_*``: the outputs printed in the PHP manual, ``http_build_query`` examples #1–#3,
  https://www.php.net/manual/en/function.http-build-query.php (example #3 is shown there word
  wrapped "for readability"; the line breaks are not part of the output and are left out here;
  its ``flags_0`` key comes from the ``numeric_prefix`` argument, given here as a plain key).
- ``event_oncrmcontactadd_app_real.urlencoded.txt``: a raw event body from the Bitrix24 PHP SDK's
  test suite (github.com/bitrix24/b24phpsdk ``tests/Unit/Services/RemoteEventsFabricTest.php``
  @ 32027b28db5f, see tests/fixtures/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deal_monitor.bitrix import phpform
from deal_monitor.simulator import formcodec

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

PHP_MANUAL_1 = b"foo=bar&baz=boom&cow=milk&php=hypertext+processor"
PHP_MANUAL_2 = b"0=foo&1=bar&2=baz&4=boom&cow=milk&php=hypertext+processor"
PHP_MANUAL_3 = (
    b"user%5Bname%5D=Bob+Smith&user%5Bage%5D=47&user%5Bsex%5D=M&"
    b"user%5Bdob%5D=5%2F12%2F1956&pastimes%5B0%5D=golf&pastimes%5B1%5D=opera&"
    b"pastimes%5B2%5D=poker&pastimes%5B3%5D=rap&children%5Bbobby%5D%5Bage%5D=12&"
    b"children%5Bbobby%5D%5Bsex%5D=M&children%5Bsally%5D%5Bage%5D=8&"
    b"children%5Bsally%5D%5Bsex%5D=F&flags_0=CEO"
)

# the PHP arrays of the manual's examples, as Python data (None = PHP null, left out on the wire)
PHP_ARRAY_1 = {"foo": "bar", "baz": "boom", "cow": "milk", "null": None, "php": "hypertext processor"}
PHP_ARRAY_2 = {0: "foo", 1: "bar", 2: "baz", 3: None, 4: "boom", "cow": "milk", "php": "hypertext processor"}
PHP_ARRAY_3 = {
    "user": {"name": "Bob Smith", "age": 47, "sex": "M", "dob": "5/12/1956"},
    "pastimes": ["golf", "opera", "poker", "rap"],
    "children": {"bobby": {"age": 12, "sex": "M"}, "sally": {"age": 8, "sex": "F"}},
    "flags_0": "CEO",
}

# what PHP's parse_str gives back (every leaf a string, lists as "0", "1"... keys)
PARSED_1 = {"foo": "bar", "baz": "boom", "cow": "milk", "php": "hypertext processor"}
PARSED_2 = {"0": "foo", "1": "bar", "2": "baz", "4": "boom", "cow": "milk", "php": "hypertext processor"}
PARSED_3 = {
    "user": {"name": "Bob Smith", "age": "47", "sex": "M", "dob": "5/12/1956"},
    "pastimes": {"0": "golf", "1": "opera", "2": "poker", "3": "rap"},
    "children": {"bobby": {"age": "12", "sex": "M"}, "sally": {"age": "8", "sex": "F"}},
    "flags_0": "CEO",
}
PARSED_SDK_EVENT = {
    "event": "ONCRMCONTACTADD",
    "event_handler_id": "58",
    "data": {"FIELDS": {"ID": "134806"}},
    "ts": "1727018926",
    "auth": {
        "access_token": "be45f0660071849a0058f18a000000010000077261ef50fc26f1357adbd86a052c9e48",
        "expires": "1727022526",
        "expires_in": "3600",
        "scope": "crm,placement,user_brief",
        "domain": "bitrix24-php-sdk-playground.bitrix24.com",
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "status": "L",
        "client_endpoint": "https://bitrix24-php-sdk-playground.bitrix24.com/rest/",
        "member_id": "010b6886ebc205e43ae65000ee00addb",
        "user_id": "1",
        "application_token": "3c6c9248ec54af6bea1159b43ee0ab32",
    },
}
SDK_EVENT = (FIXTURES / "event_oncrmcontactadd_app_real.urlencoded.txt").read_bytes().strip()

CAPTURES = [
    pytest.param(PHP_MANUAL_1, PARSED_1, id="php-manual-1"),
    pytest.param(PHP_MANUAL_2, PARSED_2, id="php-manual-2"),
    pytest.param(PHP_MANUAL_3, PARSED_3, id="php-manual-3"),
    pytest.param(SDK_EVENT, PARSED_SDK_EVENT, id="b24phpsdk-event"),
]


@pytest.mark.parametrize(("body", "parsed"), CAPTURES)
def test_the_simulator_reads_php_output_as_php_does(body, parsed):
    assert formcodec.decode(body) == parsed


@pytest.mark.parametrize(("body", "parsed"), CAPTURES)
def test_the_app_reads_php_output_as_php_does(body, parsed):
    assert phpform.decode(body, max_fields=100, max_depth=4) == parsed


@pytest.mark.parametrize(
    ("data", "body"),
    [(PHP_ARRAY_1, PHP_MANUAL_1), (PHP_ARRAY_2, PHP_MANUAL_2), (PHP_ARRAY_3, PHP_MANUAL_3),
     (PARSED_SDK_EVENT, SDK_EVENT)],
    ids=["php-manual-1", "php-manual-2", "php-manual-3", "b24phpsdk-event"],
)
def test_the_simulator_writes_the_bytes_php_writes(data, body):
    assert formcodec.encode(data).encode("ascii") == body


def test_php_urlencode_details():
    """RFC 1738 as PHP's urlencode does it: "~" escaped, "-_." kept, UTF-8 bytes in upper hex."""
    assert formcodec.encode({"a": "~-_. +", "б": "Шкаф", "t": True, "f": False}) == (
        "a=%7E-_.+%2B&%D0%B1=%D0%A8%D0%BA%D0%B0%D1%84&t=1&f=0")


def test_php_parse_str_details():
    """Appends for "name[]", last value wins, dots and spaces in the base name become "_"."""
    assert formcodec.decode(b"a[]=x&a[]=y&b=1&b=2&c.d=3&e+f[g.h]=4") == {
        "a": {"0": "x", "1": "y"}, "b": "2", "c_d": "3", "e_f": {"g.h": "4"}}


def test_limits_refuse_hostile_bodies():
    with pytest.raises(formcodec.FormLimitError):
        formcodec.decode(b"&".join([b"a=1"] * 11), max_fields=10)
    with pytest.raises(formcodec.FormLimitError):
        formcodec.decode(b"a[b][c][d]=1", max_depth=2)
    with pytest.raises(UnicodeDecodeError):
        formcodec.decode(b"a=%FF")


_NAMES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_>!<%-",
                 min_size=1, max_size=8)
_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_FORMS = st.recursive(_VALUES, lambda inner: st.dictionaries(_NAMES, inner, min_size=1, max_size=4),
                      max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAMES, _FORMS, max_size=5))
def test_the_app_reads_what_the_simulator_sends(data):
    """Any nested form the simulator encodes, both decoders read back unchanged."""
    body = formcodec.encode(data)
    assert formcodec.decode(body, max_depth=20) == data
    assert phpform.decode(body, max_fields=1000, max_depth=20) == data
