"""OAuth local app end to end, in separate processes with no keyring service:

1. ``authorize`` (no code) prints the portal address and waits; an HTTP client plays the
   browser and follows the simulator's redirect to the loopback callback (a forged ``state``
   first: refused). The process exits 0 with the tokens in the owner-only file.
2. ``bind --offline`` binds the deal events as offline events.
3. The headless app pulls the offline queue: changes arrive, survive an access-token expiry
   and a restart (the rotated refresh token was stored), and the portal's queue is cleared.
Expected values come from the simulator's raw deals; the target is read with plain SQL.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import requests

from tests.connection.support import converged
from tests.e2e.harness import ROOT, wait_for

CLIENT_ID, SECRET = "local.e2e0001.offline", "e2e-client-secret"
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAL_MONITOR_")}
    return {**env, **NO_KEYRING, "DEAL_MONITOR_CLIENT_SECRET": SECRET}


def _cli(app, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deal_monitor", "--config",
                             str(app.config_path), *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _sign_in(app, sim) -> str:
    proc = _cli(app, "authorize")
    try:
        url = ""
        lines = []
        while not url:
            line = proc.stdout.readline()
            assert line, "authorize exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("http"):
                url = line.strip()
        assert url.startswith(f"{sim.url}/oauth/authorize/?")
        callback = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        assert urlsplit(callback).hostname == "127.0.0.1"
        forged = requests.get(callback, params={"code": "x" * 70, "state": "forged"}, timeout=5)
        assert forged.status_code == 400
        page = requests.get(url, timeout=10)  # the browser: portal consent -> 302 -> loopback
        assert page.status_code == 200
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, "".join(lines) + out
        return "".join(lines) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _change(sim, ids, label: str) -> None:
    for n, deal_id in enumerate(ids):
        sim.portal.update_deal(deal_id, {"TITLE": f"{label} {n}", "OPPORTUNITY": f"{n}.25"})


def test_sign_in_bind_offline_and_sync_through_the_offline_queue(make_app, sim):
    sim.register_app(CLIENT_ID, SECRET)
    app = make_app(hook=False, portal__webhook_url="", portal__application_token="",
                   portal__member_id="", portal__client_id=CLIENT_ID,
                   portal__portal_url=sim.url, portal__oauth_server=sim.url, portal__allow_private_http=True,
                   portal__offline_events=True, sync__offline_poll_seconds=1.0)
    token_file = app.workdir / "data" / "tokens.json"

    output = _sign_in(app, sim)
    assert token_file.exists() and f"tokens stored in {token_file}" in output
    assert "system keyring" not in output
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert SECRET not in token_file.read_text(encoding="utf-8")

    bind = _cli(app, "bind", "--offline")
    out, _ = bind.communicate(timeout=60)
    assert bind.returncode == 0, out
    offline = {row.event for row in sim.bindings.of_owner(CLIENT_ID) if row.offline}
    assert offline == {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}

    app.start(env=_env())
    wait_for(lambda: app.health()["auth_state"] == "ok", timeout=20)
    ids = [sim.portal.add_deal({"TITLE": f"offline {n}", "STAGE_ID": "PREPARATION",
                                "OPPORTUNITY": "1.00"}) for n in range(4)]
    _change(sim, ids[:2], "edited")
    converged(app, sim, ids)
    sources = {row["deal_id"]: row["source"] for row in app.inbox() if row["source"] == "offline"}
    assert set(ids) <= set(sources)  # they came through the offline queue
    wait_for(lambda: len(sim.offline) == 0, timeout=30)  # cleared after the commit

    sim.reset_stats()
    sim.expire_access_tokens()
    _change(sim, ids, "after expiry")
    converged(app, sim, ids)
    assert sim.stats.token_refreshes >= 1

    assert app.stop() == 0
    more = [sim.portal.add_deal({"TITLE": "while stopped", "STAGE_ID": "EXECUTING",
                                 "OPPORTUNITY": "7.00"})]
    _change(sim, ids[2:], "while stopped")
    app.start(env=_env())
    sim.expire_access_tokens()  # the rotated refresh token must have been stored
    _change(sim, ids[:1], "after restart")
    converged(app, sim, ids + more)
    wait_for(lambda: len(sim.offline) == 0, timeout=30)
    assert app.health()["auth_state"] == "ok"
    assert app.stop() == 0
    assert SECRET not in app.console()
