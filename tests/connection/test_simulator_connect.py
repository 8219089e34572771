"""The simulator's side of the three ways in: the consent redirect, scope, event.test, and the
plan that refuses clear=0 (API.md §3, §9; rest module's LicenseException = 403 WRONG_LICENSE)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

CLIENT_ID, SECRET = "local.connect01", "connect-secret"


def _app_call(sim, method: str, token: str, **params) -> requests.Response:
    return requests.post(f"{sim.url}/rest/{method}.json", json={"auth": token, **params}, timeout=5)


def test_authorize_redirects_with_a_code_the_token_endpoint_accepts(sim):
    sim.register_app(CLIENT_ID, SECRET)
    redirect = "http://127.0.0.1:5999/oauth/callback"
    reply = requests.get(f"{sim.url}/oauth/authorize/", params={
        "client_id": CLIENT_ID, "response_type": "code", "state": "st-1",
        "redirect_uri": redirect}, allow_redirects=False, timeout=5)
    assert reply.status_code == 302
    location = urlsplit(reply.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "st-1" and query["member_id"] == sim.member_id
    assert query["scope"] == "crm,user_brief"
    tokens = requests.get(sim.oauth_url, params={
        "grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": SECRET,
        "code": query["code"]}, timeout=5).json()
    assert _app_call(sim, "crm.deal.list", tokens["access_token"]).status_code == 200


def test_authorize_refuses_unknown_apps_and_missing_redirects(sim):
    sim.register_app(CLIENT_ID, SECRET)
    unknown = requests.get(f"{sim.url}/oauth/authorize/", params={
        "client_id": "local.nobody", "redirect_uri": "http://127.0.0.1:1/cb"},
        allow_redirects=False, timeout=5)
    assert unknown.status_code == 400
    missing = requests.get(f"{sim.url}/oauth/authorize/", params={"client_id": CLIENT_ID},
                           allow_redirects=False, timeout=5)
    assert missing.status_code == 400


def test_clear0_is_refused_without_the_extended_feature_and_clear1_still_works(sim):
    sim.register_app(CLIENT_ID, SECRET)
    token = sim.issue_tokens(CLIENT_ID)["access_token"]
    assert _app_call(sim, "event.bind", token, event="ONCRMDEALUPDATE",
                     event_type="offline").json()["result"] is True
    deal = sim.portal.add_deal({"TITLE": "a"})
    sim.portal.update_deal(deal, {"TITLE": "b"})
    sim.offline.extended = False
    refused = _app_call(sim, "event.offline.get", token, clear=0)
    assert refused.status_code == 403
    assert refused.json()["error"] == "WRONG_LICENSE"
    assert len(sim.offline) == 1  # nothing was reserved or lost
    taken = _app_call(sim, "event.offline.get", token, clear=1).json()["result"]
    assert [str(e["EVENT_DATA"]["FIELDS"]["ID"]) for e in taken["events"]] == [str(deal)]
    assert taken["process_id"] is None and len(sim.offline) == 0


def test_scope_and_event_test(sim):
    sim.register_app(CLIENT_ID, SECRET, scope="crm,user_brief,placement")
    token = sim.issue_tokens(CLIENT_ID)["access_token"]
    assert _app_call(sim, "scope", token).json()["result"] == ["crm", "user_brief", "placement"]
    assert _app_call(sim, "event.test", token).json()["result"] == 1
    by_webhook = requests.post(sim.webhook_url + "event.test.json", json={}, timeout=5)
    assert by_webhook.json()["error"] == "WRONG_AUTH_TYPE"
    assert requests.post(sim.webhook_url + "scope.json", json={}, timeout=5).json()["result"] \
        == ["crm", "user_brief"]
