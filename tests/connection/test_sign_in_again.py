"""A dead refresh token (invalid_grant) puts the portal into "sign in again", visible in the
status; the window's button (Monitor.start_sign_in) brings it back without a restart."""

from __future__ import annotations

import json
import time

import requests

from deal_monitor.config import from_mapping
from deal_monitor.credentials import MemoryStore
from tests.e2e.harness import wait_for

CLIENT_ID, SECRET = "local.again01.app", "again-secret"


def test_invalid_grant_asks_to_sign_in_again_and_the_button_recovers(running, sim, tmp_path):
    sim.register_app(CLIENT_ID, SECRET)
    issued = sim.issue_tokens(CLIENT_ID)
    tokens = MemoryStore({"oauth_tokens": json.dumps({
        "access_token": issued["access_token"], "refresh_token": "never-issued-refresh-token",
        "expires": time.time() + 3600, "member_id": sim.member_id})})
    settings = from_mapping({
        "portal": {"client_id": CLIENT_ID, "portal_url": sim.url, "oauth_server": sim.url, "allow_private_http": True,
                   "client_secret": SECRET},
        "listener": {"enabled": False},
        "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0},
        "storage": {"data_dir": str(tmp_path / "data")},
    }, env={})
    monitor = running(settings, secrets=MemoryStore(), tokens=tokens)
    wait_for(lambda: monitor.status().auth_state == "ok", timeout=10)
    sim.expire_access_tokens()
    deal = sim.portal.add_deal({"TITLE": "needs auth", "STAGE_ID": "PREPARATION"})
    monitor.resync([deal])
    # 20 s: only detects a hang
    status = wait_for(lambda: (s := monitor.status()).auth_state == "reauthorize" and s,
                      timeout=20)
    assert status.auth_reason.startswith("invalid_grant")
    assert status.token_storage == "tokens kept in memory for this session only"
    assert "never-issued" not in repr(status)

    results = []
    url = monitor.start_sign_in(results.append)
    assert requests.get(url, timeout=10).status_code == 200  # the browser round trip
    wait_for(lambda: results, timeout=10)
    assert results[0].ok
    wait_for(lambda: monitor.status().auth_state == "ok", timeout=10)
    wait_for(lambda: any(d.id == deal and d.title == "needs auth" for d in monitor.deals()),
             timeout=20)
