"""Browser sign-in over the loopback redirect (RFC 8252) against the portal simulator; an HTTP
client plays the browser and follows the simulator's redirect."""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from deal_monitor.bitrix.oauth import TOKENS_KEY, OAuthAuth
from deal_monitor.bitrix.signin import LoopbackSignIn, SignInResult
from deal_monitor.credentials import MemoryStore
from deal_monitor.errors import ListenerError

CLIENT_ID, SECRET = "local.signin01", "signin-secret"


def _oauth(sim, tokens: MemoryStore) -> OAuthAuth:
    sim.register_app(CLIENT_ID, SECRET)
    return OAuthAuth(sim.url, CLIENT_ID, MemoryStore(), sim.url, token_store=tokens,
                     client_secret=SECRET)


def test_the_browser_round_trip_stores_working_tokens(sim):
    tokens = MemoryStore()
    done: list[SignInResult] = []
    signin = LoopbackSignIn(_oauth(sim, tokens), on_done=done.append)
    url = signin.start()
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"http://127.0.0.1:{signin.port}/oauth/callback"]
    assert len(query["state"][0]) >= 40
    page = requests.get(url, timeout=10)  # follows the portal's 302 to the loopback callback
    assert page.status_code == 200 and "connected" in page.text
    result = signin.wait(timeout=10)
    assert result.ok and result.member_id == sim.member_id and done == [result]
    stored = tokens.get(TOKENS_KEY)
    assert stored
    fresh = OAuthAuth(sim.url, CLIENT_ID, MemoryStore(), sim.url, token_store=tokens)
    reply = requests.post(f"{sim.url}/rest/crm.deal.list.json", json=fresh.auth_params(),
                          timeout=5)
    assert reply.status_code == 200


def test_a_forged_state_is_refused_without_a_token_request_and_state_is_single_use(sim):
    tokens = MemoryStore()
    signin = LoopbackSignIn(_oauth(sim, tokens))
    url = signin.start()
    redirect = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    parts = urlsplit(redirect)
    real = {k: v[0] for k, v in parse_qs(parts.query).items()}
    callback = f"{parts.scheme}://{parts.netloc}{parts.path}"
    forged = requests.get(callback, params={**real, "state": "guessed"}, timeout=5)
    assert forged.status_code == 400
    no_state = requests.get(callback, params={"code": real["code"]}, timeout=5)
    assert no_state.status_code == 400
    assert tokens.get(TOKENS_KEY) is None and not signin.done
    # the code was not spent by the refused requests: the real redirect still signs in with it
    assert requests.get(callback, params=real, timeout=5).status_code == 200
    assert signin.wait(timeout=10).ok and signin.forged == 2
    first_tokens = tokens.get(TOKENS_KEY)
    # replaying the very same redirect is refused (state spent; server stopped or 400)
    try:
        replay = requests.get(callback, params=real, timeout=5).status_code
    except requests.ConnectionError:
        replay = None
    assert replay in (400, None)
    assert tokens.get(TOKENS_KEY) == first_tokens


def test_denied_consent_and_timeout_end_the_attempt(sim):
    tokens = MemoryStore()
    oauth = _oauth(sim, tokens)
    sim.revoke_app(CLIENT_ID)
    signin = LoopbackSignIn(oauth)
    page = requests.get(signin.start(), timeout=10)
    assert page.status_code == 400
    result = signin.wait(timeout=10)
    assert (result.ok, result.error) == (False, "denied")
    waiting = LoopbackSignIn(oauth)
    waiting.start()
    assert waiting.wait(timeout=0.2).error == "timeout"
    cancelled = LoopbackSignIn(oauth)
    cancelled.start()
    threading.Timer(0.1, cancelled.cancel).start()
    assert cancelled.wait(timeout=10).error == "cancelled"  # 10 s: only detects a hang
    assert tokens.get(TOKENS_KEY) is None


def test_a_taken_sign_in_port_is_a_clear_error(sim):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenerError) as err:
            LoopbackSignIn(_oauth(sim, MemoryStore()), port=port).start()
    assert f"127.0.0.1:{port}" in str(err.value) and "signin_port" in err.value.hint
