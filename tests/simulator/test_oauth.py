"""OAuth: code exchange, refresh-token rotation, expired_token, invalid_grant, install events."""

from __future__ import annotations

import threading

import requests

from deal_monitor.bitrix import phpform
from deal_monitor.simulator import PortalSimulator

from .conftest import Receiver, app_call, fixture_json, make_app

ERRORS = fixture_json("errors_examples.json")


def _refresh(sim: PortalSimulator, token: str, secret: str = "s3cr3t") -> requests.Response:
    return requests.post(sim.oauth_url, data={
        "grant_type": "refresh_token", "client_id": "local.abc123", "client_secret": secret,
        "refresh_token": token}, timeout=5)


def test_code_exchange_response_shape(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    assert list(tokens) == ["access_token", "expires", "expires_in", "scope", "domain",
                            "server_endpoint", "status", "client_endpoint", "member_id",
                            "user_id", "refresh_token"]
    assert tokens["expires_in"] == 3600 and tokens["client_endpoint"] == sim.url + "/rest/"
    assert tokens["member_id"] == sim.member_id and tokens["user_id"] == 1
    ok = app_call(sim, "crm.deal.list", tokens["access_token"])
    assert ok.status_code == 200 and ok.headers["X-Bitrix-Rest-Application"] == "local.abc123"


def test_code_is_single_use_and_checked(sim: PortalSimulator) -> None:
    sim.register_app("local.abc123", "s3cr3t")
    code = sim.issue_auth_code()
    params = {"grant_type": "authorization_code", "client_id": "local.abc123",
              "client_secret": "s3cr3t", "code": code}
    wrong_secret = requests.get(sim.oauth_url, params={**params, "client_secret": "nope"}, timeout=5)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert requests.get(sim.oauth_url, params=params, timeout=5).status_code == 200
    again = requests.get(sim.oauth_url, params=params, timeout=5)
    assert again.status_code == 400 and again.json() == ERRORS["oauth_invalid_grant"]["body"]


def test_refresh_rotates_and_old_refresh_token_is_dead(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    first = _refresh(sim, tokens["refresh_token"])
    assert first.status_code == 200
    new = first.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    reuse = _refresh(sim, tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json() == {"error": "invalid_grant"}
    assert _refresh(sim, new["refresh_token"]).status_code == 200
    assert sim.stats.token_refreshes == 2


def test_expired_token_then_refresh(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    sim.expire_access_tokens()
    expired = app_call(sim, "crm.deal.list", tokens["access_token"])
    assert expired.status_code == 401 and expired.json() == ERRORS["expired_token"]["body"]
    fresh = _refresh(sim, tokens["refresh_token"]).json()
    assert app_call(sim, "crm.deal.list", fresh["access_token"]).status_code == 200


def test_concurrent_refresh_with_same_token_only_one_wins(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    results: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        status = _refresh(sim, tokens["refresh_token"]).status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [200] + [400] * 7


def test_revoked_app(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    sim.revoke_app()
    rest = app_call(sim, "crm.deal.list", tokens["access_token"])
    assert rest.status_code == 401 and rest.json() == ERRORS["invalid_token"]["body"]
    assert _refresh(sim, tokens["refresh_token"]).json() == {"error": "invalid_grant"}
    garbage = app_call(sim, "crm.deal.list", "not-a-token")
    assert garbage.status_code == 401 and garbage.json()["error"] == "NO_AUTH_FOUND"


def test_install_and_uninstall_events(sim: PortalSimulator, receiver: Receiver) -> None:
    sim.register_app("local.abc123", "s3cr3t", installed=False)
    tokens = sim.install_app(receiver.url)
    assert receiver.wait_for(1)
    form = phpform.decode(receiver.requests[0]["body"], max_fields=100, max_depth=4)
    assert form["event"] == "ONAPPINSTALL" and form["data"]["INSTALLED"] == "Y"
    auth = form["auth"]
    assert auth["access_token"] == tokens["access_token"]
    assert auth["refresh_token"] == tokens["refresh_token"]
    assert auth["application_token"] == sim.application_token and auth["member_id"] == sim.member_id
    assert _refresh(sim, auth["refresh_token"]).status_code == 200
    sim.uninstall_app()
    assert receiver.wait_for(2)
    gone = phpform.decode(receiver.requests[1]["body"], max_fields=100, max_depth=4)
    assert gone["event"] == "ONAPPUNINSTALL"
    assert set(gone["auth"]) == {"domain", "client_endpoint", "server_endpoint", "member_id",
                                 "application_token"}
    assert app_call(sim, "crm.deal.list", tokens["access_token"]).status_code == 401


def test_token_endpoint_fault_only_hits_token_endpoint(sim: PortalSimulator) -> None:
    tokens = make_app(sim)
    sim.faults.fail_next(1)  # a catch-all REST fault must not touch the token endpoint
    sim.faults.fail_next(1, status=402, method="oauth.token",
                         body=ERRORS["oauth_PAYMENT_REQUIRED"]["body"])
    refused = _refresh(sim, tokens["refresh_token"])
    assert refused.status_code == 402 and refused.json()["error"] == "PAYMENT_REQUIRED"
    assert _refresh(sim, tokens["refresh_token"]).status_code == 200  # token was not consumed
    assert app_call(sim, "crm.deal.list", tokens["access_token"]).status_code == 503
