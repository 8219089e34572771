"""The REST client against the simulator: pacing, retries, batch errors, fast paging."""

from __future__ import annotations

import threading
import time

import pytest

from deal_monitor.bitrix.client import BitrixClient, WebhookAuth
from deal_monitor.bitrix.throttle import LeakyBucket, OperatingBudget
from deal_monitor.errors import BitrixError
from deal_monitor.simulator import PortalSimulator


@pytest.fixture
def sim():
    with PortalSimulator() as simulator:
        yield simulator


def client_for(sim, burst: int = 50, rate: float = 2.0, **kwargs) -> BitrixClient:
    kwargs.setdefault("backoff_base", 0.05)
    return BitrixClient(WebhookAuth(sim.webhook_url), LeakyBucket(burst, rate), **kwargs)


def test_pacing_keeps_the_portal_from_refusing(sim):
    """More calls than the burst, back to back: the client waits instead of being refused."""
    client = client_for(sim)
    started = time.monotonic()
    for _ in range(52):
        client.call("crm.deal.fields")
    assert sim.stats.refusals_503 == 0
    assert time.monotonic() - started >= 2.0  # it had to wait for the bucket to drain


def test_bucket_is_shared_by_threads(sim):
    client = client_for(sim)
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(13):
                client.call("crm.deal.fields")
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and sim.stats.refusals_503 == 0 and sim.stats.http_requests == 52


@pytest.mark.parametrize("fault", ["503", "html", "drop", "500"])
def test_transient_failures_are_retried(sim, fault):
    client = client_for(sim)
    if fault == "503":
        sim.faults.fail_next(2, status=503)
    elif fault == "html":
        sim.faults.fail_next(2, status=502, html=True)
    elif fault == "drop":
        sim.faults.drop_next(2)
    else:
        sim.faults.fail_next(2, status=500)
    reply = client.call("crm.deal.fields")
    assert isinstance(reply.result, dict) and "TITLE" in reply.result
    assert client.stats.retries == 2


def test_permanent_errors_are_not_retried(sim):
    client = BitrixClient(WebhookAuth(sim.webhook_url.replace(sim.webhook_secret, "wrong")),
                          LeakyBucket(50, 2.0))
    with pytest.raises(BitrixError) as info:
        client.call("crm.deal.fields")
    assert info.value.code == "NO_AUTH_FOUND" and not info.value.transient
    assert sim.webhook_secret not in str(info.value)
    assert sim.stats.http_requests == 1


def test_429_pauses_only_that_method(sim):
    client = client_for(sim, default_block_seconds=0.5, max_retries=2)
    sim.faults.fail_next(1, status=429, method="crm.deal.list")
    started = time.monotonic()
    reply = client.call("crm.deal.list", {"start": -1})
    assert isinstance(reply.result, list)
    assert time.monotonic() - started >= 0.5  # waited the block out before trying again
    assert client.budget.wait_time("crm.deal.fields") == 0


def test_operating_budget_slows_a_method_before_it_is_blocked():
    budget = OperatingBudget(limit_seconds=480.0, clock=lambda: 1000.0)
    budget.observe("crm.deal.list", {"operating": 100.0, "finish": 1000.0, "operating_reset_at": 1300.0})
    assert budget.wait_time("crm.deal.list") == 0
    budget.observe("crm.deal.list", {"operating": 470.0, "finish": 5000.0, "operating_reset_at": 5120.0})
    # measured on the portal's clock: 120 s until the oldest bucket drops
    assert budget.wait_time("crm.deal.list") == pytest.approx(120.0)
    assert budget.wait_time("crm.deal.get") == 0


def test_batch_maps_each_error_to_its_deal(sim):
    ids = [sim.portal.add_deal({"TITLE": f"d{n}"}) for n in range(3)]
    sim.portal.delete_deal(ids[1])
    client = client_for(sim)
    found, failed = client.get_deals([ids[0], ids[1], ids[2], 987654])
    assert set(found) == {ids[0], ids[2]}
    assert set(failed) == {ids[1], 987654} and all(e.not_found for e in failed.values())
    assert sim.stats.http_requests == 1


def test_numeric_batch_keys_are_refused():
    client = BitrixClient(WebhookAuth("http://127.0.0.1:9/rest/1/x/"), LeakyBucket(50, 2.0))
    with pytest.raises(ValueError):
        client.batch({"123": ("crm.deal.get", {"id": 123})})


def test_fast_paging_lists_every_deal_once_in_few_requests(sim):
    ids = sim.portal.bulk_add(3_210)
    client = client_for(sim)
    seen = [int(row["ID"]) for page in client.iter_deal_pages(select=("ID",)) for row in page]
    assert seen == ids
    assert sim.stats.http_requests == 3  # 1 plain page, then 2 batches of 50 chained pages


def test_fast_paging_resumes_after_an_id_and_honours_the_filter(sim):
    sim.portal.bulk_add(300, STAGE_ID="NEW")
    sim.portal.bulk_add(200, STAGE_ID="WON")
    client = client_for(sim)
    won = [int(r["ID"]) for p in client.iter_deal_pages({"STAGE_ID": "WON"}, select=("ID",)) for r in p]
    assert won == list(range(301, 501))
    later = [int(r["ID"]) for p in client.iter_deal_pages({}, select=("ID",), after_id=450) for r in p]
    assert later == list(range(451, 501))


def test_expected_count_sizes_the_last_batch(sim):
    sim.portal.bulk_add(600)
    client = client_for(sim)
    pages = list(client.iter_deal_pages(select=("ID",), expected=600))
    assert sum(len(p) for p in pages) == 600
    # 1 first page + 11 more pages (+1 spare) instead of 50 chained commands
    assert sim.stats.calls_by_method["crm.deal.list"] <= 1 + 12


def test_a_full_bucket_is_waited_out_not_backed_off_on_top():
    """After a 503 QUERY_LIMIT_EXCEEDED the bucket mirror already waits for a slot (1/rate);
    exponential backoff joins only when refusals repeat (another app shares the bucket)."""
    client = BitrixClient(WebhookAuth("https://portal.example/rest/1/abc/"), LeakyBucket(50, 2.0),
                          backoff_base=0.5)
    full = BitrixError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
    assert [client._retry_delay(full, attempt) for attempt in (0, 1)] == [0.0, 0.0]
    later = [client._retry_delay(full, attempt) for attempt in (2, 3, 4)]
    assert 0.25 <= later[0] <= 0.75 and 0.5 <= later[1] <= 1.5 and 1.0 <= later[2] <= 3.0
    broken = BitrixError("INTERNAL_SERVER_ERROR", "", 500)
    assert 0.25 <= client._retry_delay(broken, 0) <= 0.75  # other errors back off at once
    # and the refusal itself fills the mirror: the next request waits for one slot to drain
    client.bucket.refused()
    assert client.bucket.available() < 1
