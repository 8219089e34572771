"""The live listener: real waitress on loopback, real SQLite inbox, no portal needed."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from deal_monitor import config
from deal_monitor.model import EventStatus
from deal_monitor.service import Monitor
from tests.conftest import fixture_bytes
from tests.e2e.harness import wait_for

TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
BODY = fixture_bytes("event_oncrmdealadd_outgoing_webhook_DERIVED.urlencoded.txt")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def monitor(tmp_path):
    settings = config.from_mapping(
        {
            "portal": {"application_token": TOKEN},
            "listener": {"port": 0},
            "storage": {"data_dir": str(tmp_path)},
            "sync": {"reconcile_minutes": 0},
        },
        env={},
    )
    m = Monitor(settings)
    m.start()
    yield m
    m.stop()


def url(m: Monitor, path: str = "/bitrix24/events") -> str:
    return f"http://127.0.0.1:{m.listener.port}{path}"


def queued(m: Monitor) -> list:
    return [e for e in m.events() if e.status != EventStatus.REJECTED]


def test_valid_event_is_committed_before_the_reply(monitor):
    reply = requests.post(url(monitor), data=BODY, headers=FORM, timeout=5)
    assert reply.status_code == 200
    events = queued(monitor)  # read right after the 200: it must already be there
    assert [(e.event, e.deal_id, e.status) for e in events] == [("ONCRMDEALADD", 7405, EventStatus.QUEUED)]


def test_duplicates_are_stored_once(monitor):
    threads = [
        threading.Thread(target=requests.post, args=(url(monitor),), kwargs={"data": BODY, "headers": FORM})
        for _ in range(10)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(queued(monitor)) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (BODY.replace(TOKEN.encode(), b"x" * 32), FORM, 401),
        (BODY.replace(b"7405", b"74O5"), FORM, 400),
        (b"event=ONCRMDEALADD&auth%5Bapplication_token%5D=" + TOKEN.encode(), FORM, 400),
        (BODY, {"Content-Type": "application/json"}, 415),
        (BODY, {"Content-Type": "multipart/form-data; boundary=x"}, 415),
        (b"a=" + b"x" * 70_000, FORM, 413),
        (b"%zz", FORM, 400),
    ],
)
def test_bad_requests_store_nothing(monitor, body, headers, status):
    reply = requests.post(url(monitor), data=body, headers=headers, timeout=5)
    assert reply.status_code == status
    assert queued(monitor) == []
    if status != 413:  # waitress answers oversized bodies before the app runs
        # refusals are counted at once and written by the status thread, in batches
        rejected = wait_for(lambda: [e for e in monitor.events()
                                     if e.status == EventStatus.REJECTED])
        assert rejected[0].remote_addr == "127.0.0.1"
        assert rejected[0].event == f"HTTP {status}"
    # the listener is still healthy and the next valid event is taken
    assert requests.post(url(monitor), data=BODY, headers=FORM, timeout=5).status_code == 200
    assert len(queued(monitor)) == 1


def test_wrong_method_and_path(monitor):
    assert requests.get(url(monitor), timeout=5).status_code == 405
    assert requests.put(url(monitor), data=BODY, headers=FORM, timeout=5).status_code == 405
    assert requests.post(url(monitor, "/other"), data=BODY, headers=FORM, timeout=5).status_code == 404
    assert queued(monitor) == []


def test_unknown_event_is_accepted_and_ignored(monitor):
    body = BODY.replace(b"ONCRMDEALADD", b"ONCRMLEADADD")
    assert requests.post(url(monitor), data=body, headers=FORM, timeout=5).status_code == 200
    (event,) = queued(monitor)
    assert event.status == EventStatus.IGNORED and monitor.state.inbox_depth() == 0


def test_healthz(monitor):
    requests.post(url(monitor), data=BODY, headers=FORM, timeout=5)
    health = requests.get(url(monitor, "/healthz"), timeout=5).json()
    assert health["listening"] is True and health["inbox_depth"] == 1
    assert health["last_event_at"] is not None
    assert TOKEN not in str(health)


def test_port_taken_is_a_clear_error_not_a_crash(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = config.from_mapping(
            {"listener": {"port": port}, "storage": {"data_dir": str(tmp_path)}}, env={}
        )
        m = Monitor(settings)
        m.start()
        try:
            status = m.status()
            assert not status.listening and str(port) in status.listen_error
        finally:
            m.stop()


def test_stop_closes_the_socket(tmp_path):
    settings = config.from_mapping(
        {"listener": {"port": 0}, "storage": {"data_dir": str(tmp_path)}}, env={}
    )
    m = Monitor(settings)
    m.start()
    port = m.listener.port
    m.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_corrupt_state_file_is_moved_aside_and_the_app_starts(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(b"this is not a database" * 500)
    settings = config.from_mapping(
        {"listener": {"port": 0}, "storage": {"data_dir": str(data)}}, env={}
    )
    m = Monitor(settings)
    m.start()
    try:
        assert m.status().listening
        assert "corrupt" in m.status().last_error
        assert list(data.glob("state.db.corrupt-*"))
    finally:
        m.stop()
