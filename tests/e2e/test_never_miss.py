"""Never miss a deal, never flood the portal: storms, OAuth, offline events, full resync.

These run the real Monitor in-process (real listener, real SQLite files) against the portal
simulator over real HTTP, so the simulator's counters can be read exactly.
"""

from __future__ import annotations

import threading

import requests

from deal_monitor import config
from deal_monitor.credentials import MemoryStore
from deal_monitor.model import NullSink, Progress
from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import wait_for
from tests.oracle import live_ids, monitor_target


def settings_for(sim: PortalSimulator, tmp_path, webhook: bool = True, **sections):
    data = {
        "portal": {"application_token": sim.application_token, "member_id": sim.member_id},
        "listener": {"port": 0},
        "sync": {"debounce_seconds": 0.3, "reconcile_minutes": 0, "deletion_check_minutes": 0},
        "storage": {"data_dir": str(tmp_path / "data")},
    }
    if webhook:
        data["portal"]["webhook_url"] = sim.webhook_url
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config.from_mapping(data, env={})


def target_ids(monitor: Monitor) -> set[int]:
    return live_ids(*monitor_target(monitor))


def title_of(monitor: Monitor, deal_id: int) -> str | None:
    view = monitor.state.deal(deal_id)
    return view.title if view else None


class Recorder(NullSink):
    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.on_progress = None

    def progress_changed(self, progress: Progress) -> None:
        self.progress.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)


def test_event_storm_of_300_deals_costs_few_requests(tmp_path, running):
    with PortalSimulator() as sim:
        monitor = running(settings_for(sim, tmp_path))
        sim.add_outgoing_webhook(f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events")
        wait_for(lambda: monitor.scheduler.runs >= 1)  # the start-up reconciliation is done
        sim.reset_stats()
        ids = [sim.portal.add_deal({"TITLE": f"Заказ {n}", "STAGE_ID": "PREPARATION"})
               for n in range(300)]
        assert sim.wait_deliveries(30)
        wait_for(lambda: target_ids(monitor) >= set(ids), timeout=60)
        assert sim.stats.http_requests < 40, sim.stats.http_requests
        assert sim.stats.refusals_503 <= 3


def test_reconciliation_alone_brings_changes_without_any_listener(tmp_path, running):
    with PortalSimulator() as sim:
        first = sim.portal.add_deal({"TITLE": "до запуска", "STAGE_ID": "EXECUTING"})
        settings = settings_for(sim, tmp_path, listener={"enabled": False},
                                sync={"reconcile_minutes": 0.02})
        monitor = running(settings)
        wait_for(lambda: first in target_ids(monitor))
        second = sim.portal.add_deal({"TITLE": "после запуска", "STAGE_ID": "WON"})
        sim.portal.update_deal(first, {"TITLE": "изменена"})
        wait_for(lambda: second in target_ids(monitor), timeout=20)
        wait_for(lambda: title_of(monitor, first) == "изменена", timeout=20)
        assert not monitor.status().listening


def app_monitor(sim, tmp_path, running, store=None, **extra):
    sim.register_app("local.app.1", "app-secret-value")
    store = store or MemoryStore({"client_secret": "app-secret-value"})
    settings = settings_for(
        sim, tmp_path, webhook=False,
        portal={"client_id": "local.app.1", "portal_url": sim.url, "oauth_server": sim.url, "allow_private_http": True,
                **extra.pop("portal", {})},
        **extra,
    )
    monitor = running(settings, secrets=store)
    return monitor, store


def test_offline_events_alone_bring_every_change(tmp_path, running):
    with PortalSimulator() as sim:
        monitor, _ = app_monitor(
            sim, tmp_path, running,
            portal={"offline_events": True},
            listener={"enabled": False},
            sync={"offline_poll_seconds": 0.2},
        )
        monitor.authorize(sim.issue_auth_code())
        assert "ONCRMDEALADD: bound (offline)" in monitor.bind_handlers(offline=True)
        monitor.scheduler.stop()  # reconciliation off: only the offline queue may bring deals
        ids = [sim.portal.add_deal({"TITLE": f"off {n}", "STAGE_ID": "EXECUTING"}) for n in range(7)]
        sim.portal.update_deal(ids[0], {"TITLE": "off 0 changed"})
        wait_for(lambda: target_ids(monitor) >= set(ids), timeout=20)
        wait_for(lambda: title_of(monitor, ids[0]) == "off 0 changed", timeout=20)
        # every reserved batch is cleared once written: nothing is left in the portal's queue
        wait_for(lambda: monitor.state.get_value("offline.process_id") is None, timeout=20)
        left = sim.offline.list_rows() if hasattr(sim.offline, "list_rows") else None
        if left is not None:
            assert left == []


def test_expired_token_mid_resync_refreshes_once_and_loses_nothing(tmp_path, running):
    with PortalSimulator() as sim:
        sim.portal.bulk_add(600, STAGE_ID="EXECUTING")
        monitor, store = app_monitor(sim, tmp_path, running, listener={"enabled": False})
        monitor.authorize(sim.issue_auth_code())
        wait_for(lambda: len(target_ids(monitor)) == 600, timeout=30)
        old_refresh = store.get("oauth_tokens")
        sim.reset_stats()
        sim.expire_access_tokens()
        assert monitor.resync_all()
        monitor._job.join(30)
        wait_for(lambda: monitor.status().inbox_depth == 0, timeout=30)
        assert sim.stats.token_refreshes == 1
        assert store.get("oauth_tokens") != old_refresh  # the rotated token was stored
        assert len(target_ids(monitor)) == 600
        assert monitor.status().auth_state == "ok"


def test_invalid_grant_puts_the_portal_in_reauthorize_state_without_a_loop(tmp_path, running):
    with PortalSimulator() as sim:
        sim.portal.add_deal({"TITLE": "x", "STAGE_ID": "EXECUTING"})
        monitor, _ = app_monitor(sim, tmp_path, running, listener={"enabled": False})
        monitor.authorize(sim.issue_auth_code())
        wait_for(lambda: len(target_ids(monitor)) == 1)
        sim.revoke_app()
        sim.expire_access_tokens()
        monitor.resync([1])
        wait_for(lambda: monitor.status().auth_state == "reauthorize", timeout=20)
        sim.reset_stats()
        monitor.resync([1])
        monitor.reconcile_now()
        threading.Event().wait(1.5)
        assert sim.stats.token_refreshes == 0
        assert sim.stats.http_requests == 0  # no calls at all until someone re-authorizes
        assert monitor.status().inbox_depth >= 1  # the work waits, it is not dropped


def test_app_install_event_stores_the_token_and_uninstall_stops(tmp_path, running):
    with PortalSimulator() as sim:
        store = MemoryStore({"client_secret": "app-secret-value"})
        monitor, _ = app_monitor(sim, tmp_path, running, store=store,
                                 portal={"application_token": ""})
        assert not monitor.has_credentials()
        listener = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
        sim.install_app(listener)
        assert sim.wait_deliveries(10)
        wait_for(lambda: store.get("application_token") == sim.application_token)
        assert monitor.has_credentials()
        # a forged install with a random token is queued for verification (no REST call on
        # the listener thread) and refused by the verifier: the portal does not know its token
        forged = (
            "event=ONAPPINSTALL&auth%5Baccess_token%5D=forged0123456789&auth%5Brefresh_token%5D="
            "forged0123456789&auth%5Bapplication_token%5D=evil0123456789&auth%5Bmember_id%5D="
            + sim.member_id + "&auth%5Bdomain%5D=" + sim.domain
        )
        reply = requests.post(listener, data=forged, timeout=5,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 200
        wait_for(lambda: monitor.installs.refused == 1)
        assert store.get("application_token") == sim.application_token
        # without the portal's identity it is refused at once
        reply = requests.post(listener, data=forged.split("&auth%5Bdomain%5D=")[0], timeout=5,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 403
        sim.uninstall_app(handler_url=listener)
        assert sim.wait_deliveries(10)
        wait_for(lambda: monitor.status().auth_state == "reauthorize")


def test_full_resync_of_10000_deals_is_near_the_fewest_requests(tmp_path, running):
    with PortalSimulator() as sim:
        sim.portal.bulk_add(10_000, STAGE_ID="EXECUTING")
        recorder = Recorder()
        monitor = running(settings_for(sim, tmp_path, listener={"enabled": False}), sink=recorder)
        wait_for(lambda: monitor.scheduler.runs >= 1, timeout=60)
        wait_for(lambda: monitor.status().inbox_depth == 0, timeout=120)
        sim.reset_stats()
        assert monitor.resync_all()
        monitor._job.join(120)
        fewest = 10_000 // 2_500
        # one extra request counts the deals for the progress bar and ETA
        assert sim.stats.http_requests <= 1.5 * fewest + 1, sim.stats.http_requests
        assert sim.stats.refusals_503 == 0 and sim.stats.refusals_429 == 0
        finished = [p for p in recorder.progress if p.job == "resync" and p.finished]
        assert finished and finished[-1].done == 10_000 and finished[-1].total == 10_000
        assert any(p.eta_seconds is not None for p in recorder.progress if not p.finished)
        wait_for(lambda: len(target_ids(monitor)) == 10_000, timeout=120)


def test_interrupted_full_resync_resumes_where_it_stopped(tmp_path, running):
    with PortalSimulator() as sim:
        sim.portal.bulk_add(6_000, STAGE_ID="EXECUTING")
        settings = settings_for(sim, tmp_path, listener={"enabled": False})
        recorder = Recorder()
        monitor = running(settings, sink=recorder)
        wait_for(lambda: monitor.scheduler.runs >= 1, timeout=60)
        # cancel as soon as the first pages are in (the Cancel button, or Ctrl+C)
        recorder.on_progress = lambda p: p.done >= 50 and not p.finished and monitor.cancel_job()
        assert monitor.resync_all()
        monitor._job.join(60)
        stopped = [p for p in recorder.progress if p.finished][-1]
        assert stopped.cancelled and stopped.done < 6_000
        cursor = int(monitor.state.get_value("resync.cursor"))
        assert 50 <= cursor < 6_000
        recorder.on_progress = None
        recorder.progress.clear()
        sim.reset_stats()
        assert monitor.resync_all()
        monitor._job.join(60)
        finished = [p for p in recorder.progress if p.finished][-1]
        assert not finished.cancelled
        assert finished.done == 6_000 - cursor  # it went on from the cursor, not from the start
        assert monitor.state.get_value("resync.cursor") is None
