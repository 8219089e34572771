"""Fault injection: forced errors, HTML pages, dropped connections, truncation, read lag."""

from __future__ import annotations

import time

import pytest
import requests

from deal_monitor.simulator import PortalSimulator

from .conftest import call, fixture_json


def test_fail_next_uses_real_bodies_then_recovers(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({"TITLE": "до"})
    sim.faults.fail_next(2, status=503)
    first = call(sim, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "после"}})
    assert first.status_code == 503
    assert first.json() == fixture_json("errors_examples.json")["QUERY_LIMIT_EXCEEDED"]["body"]
    assert call(sim, "crm.deal.get", {"id": deal_id}).status_code == 503
    assert sim.portal.get_deal(deal_id)["TITLE"] == "до"  # the refused write did nothing
    assert call(sim, "crm.deal.get", {"id": deal_id}).status_code == 200
    assert sim.stats.faults_injected == 2 and sim.faults.pending == 0


def test_fail_only_one_method_custom_body_and_html(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({})
    sim.faults.fail_next(1, status=500, method="crm.deal.get", html=True)
    assert call(sim, "crm.deal.list").status_code == 200  # other methods untouched
    page = call(sim, "crm.deal.get", {"id": deal_id})
    assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")
    assert "<html>" in page.text
    sim.faults.fail_next(1, status=200, body='{"result":', method="crm.deal.get")
    broken = call(sim, "crm.deal.get", {"id": deal_id})
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    sim.faults.fail_next(1, status=503, body={"error": "OVERLOAD_LIMIT",
                                             "error_description": "REST API is blocked due to overload."})
    assert call(sim, "crm.deal.get", {"id": deal_id}).json()["error"] == "OVERLOAD_LIMIT"


def test_drop_next_closes_without_answer(sim: PortalSimulator) -> None:
    sim.faults.drop_next(1, method="crm.deal.list")
    with pytest.raises(requests.ConnectionError):
        requests.post(sim.webhook_url + "crm.deal.list", json={}, timeout=5)
    assert call(sim, "crm.deal.list").status_code == 200


def test_truncated_body(sim: PortalSimulator) -> None:
    sim.portal.bulk_add(10)
    sim.faults.truncate_next(1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.post(sim.webhook_url + "crm.deal.list", json={}, timeout=5)
    assert call(sim, "crm.deal.list").status_code == 200


def test_stall_exceeds_client_timeout(sim: PortalSimulator) -> None:
    sim.faults.stall_next(1, seconds=0.6)
    with pytest.raises(requests.Timeout):  # the stall outlasts the client's read timeout
        requests.post(sim.webhook_url + "crm.deal.fields", json={}, timeout=0.2)


def test_latency_applies_to_every_request() -> None:
    with PortalSimulator(rate_limit=False, latency=0.15) as sim:
        started = time.monotonic()
        call(sim, "crm.deal.fields")
        assert time.monotonic() - started >= 0.15


def test_new_deals_hidden_for_n_reads(sim: PortalSimulator) -> None:
    sim.faults.hide_new_deals_reads = 2
    deal_id = call(sim, "crm.deal.add", {"fields": {"TITLE": "лаг"}}).json()["result"]
    statuses = [call(sim, "crm.deal.get", {"id": deal_id}).status_code for _ in range(3)]
    assert statuses == [400, 400, 200]
    assert sim.portal.get_deal(deal_id) is not None  # the data is there all along
