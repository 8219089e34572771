"""Webhook auth, parameter transports and response shapes compared with the real fixtures."""

from __future__ import annotations

import re
import time

import requests

from deal_monitor.simulator import PortalSimulator

from .conftest import call, fixture_json

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+03:00$")


def test_webhook_auth_good_and_bad_secret(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({"TITLE": "Проверка"})
    good = requests.post(sim.webhook_url + "crm.deal.get.json", data={"id": deal_id}, timeout=5)
    assert good.status_code == 200
    assert good.json()["result"]["ID"] == str(deal_id)
    bad = requests.post(f"{sim.url}/rest/1/wrongsecret123456/crm.deal.get.json",
                        data={"id": deal_id}, timeout=5)
    assert bad.status_code == 401
    assert bad.json() == fixture_json("errors_examples.json")["NO_AUTH_FOUND"]["body"]
    wrong_user = requests.post(f"{sim.url}/rest/2/{sim.webhook_secret}/crm.deal.get",
                               data={"id": deal_id}, timeout=5)
    assert wrong_user.status_code == 401


def test_oauth_path_without_auth_is_refused(sim: PortalSimulator) -> None:
    response = requests.post(f"{sim.url}/rest/crm.deal.list", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "NO_AUTH_FOUND"


def test_params_from_query_form_and_json(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({"TITLE": "Три способа"})
    by_query = requests.get(sim.webhook_url + "crm.deal.get", params={"id": deal_id}, timeout=5)
    by_form = call(sim, "crm.deal.get", {"id": deal_id}, as_json=False)
    by_json = call(sim, "crm.deal.get", {"id": deal_id})
    assert by_query.json()["result"] == by_form.json()["result"] == by_json.json()["result"]
    assert by_json.json()["result"]["TITLE"] == "Три способа"


def test_deal_get_matches_fixture_shape(sim: PortalSimulator) -> None:
    sample = fixture_json("crm_deal_get_docs.json")
    deal_id = sim.portal.add_deal({
        "TITLE": "Новая сделка #1", "TYPE_ID": "COMPLEX", "STAGE_ID": "PREPARATION",
        "PROBABILITY": 99, "CURRENCY_ID": "EUR", "OPPORTUNITY": 1000000,
        "IS_MANUAL_OPPORTUNITY": "Y", "COMPANY_ID": 9, "CONTACT_ID": 84,
        "BEGINDATE": "2024-08-30", "CLOSEDATE": "2024-09-09T02:00:00+02:00",
        "COMMENTS": "[B]Пример комментария[/B]", "SOURCE_ID": "CALLBACK", "UTM_SOURCE": "google",
        "UF_CRM_1721244482250": "Привет мир!",
    })
    response = call(sim, "crm.deal.get", {"id": deal_id})
    assert response.status_code == 200
    assert '"COMMENTS":"[B]Пример комментария[\\/B]"' in response.text  # PHP escapes slashes
    deal = response.json()["result"]
    expected_keys = [k for k in sample["result"] if not k.startswith("PARENT_ID_")]
    assert [k for k in deal if k in expected_keys] == expected_keys
    assert deal["ID"] == str(deal_id)
    assert deal["OPPORTUNITY"] == "1000000.00" and deal["TAX_VALUE"] == "0.00"
    assert deal["PROBABILITY"] == "99" and deal["COMPANY_ID"] == "9" and deal["CONTACT_ID"] == "84"
    assert deal["LEAD_ID"] is None and deal["QUOTE_ID"] is None
    assert deal["BEGINDATE"] == "2024-08-30T00:00:00+03:00"
    assert deal["CLOSEDATE"] == "2024-09-09T00:00:00+03:00"
    assert ISO.match(deal["DATE_CREATE"]) and ISO.match(deal["DATE_MODIFY"])
    assert deal["STAGE_SEMANTIC_ID"] == "P" and deal["CLOSED"] == "N" and deal["CATEGORY_ID"] == "0"
    assert all(isinstance(v, str) for v in deal.values() if v is not None)
    assert set(response.json()["time"]) >= set(sample["time"])


def test_time_block_like_fixture(sim: PortalSimulator) -> None:
    sample = fixture_json("crm_status_list_deal_stage_docs.json")["time"]
    body = call(sim, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}}).json()
    block = body["time"]
    assert list(block) == list(sample)
    assert isinstance(block["start"], float) and block["finish"] >= block["start"]
    assert ISO.match(block["date_start"]) and ISO.match(block["date_finish"])
    assert isinstance(block["operating_reset_at"], int)
    assert block["operating_reset_at"] > block["start"]


def test_status_list_rows_like_fixture(sim: PortalSimulator) -> None:
    sample = fixture_json("crm_status_list_deal_stage_docs.json")
    body = call(sim, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"},
                                         "order": {"SORT": "ASC"}}).json()
    assert body["result"] == sample["result"]
    assert body["total"] == sample["total"]
    other = call(sim, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}}).json()
    ids = [row["STATUS_ID"] for row in other["result"]]
    assert ids[:3] == ["C1:NEW", "C1:PREPARATION", "C1:EXECUTING"]
    assert {"C1:WON", "C1:LOSE"} <= set(ids)
    assert all(row["CATEGORY_ID"] == "1" and "EXTRA" in row for row in other["result"])


def test_category_list_and_users(sim: PortalSimulator) -> None:
    body = call(sim, "crm.category.list", {"entityTypeId": 2}).json()
    cats = body["result"]["categories"]
    assert [(c["id"], c["name"], c["isDefault"]) for c in cats] == [
        (0, "Общая", "Y"), (1, "Производство", "N")]
    assert body["total"] == 2
    users = call(sim, "user.get", {"ID": 6}).json()["result"]
    assert len(users) == 1 and users[0]["ID"] == "6" and users[0]["NAME"] == "Игорь"


def test_deal_fields_descriptors(sim: PortalSimulator) -> None:
    fields = call(sim, "crm.deal.fields").json()["result"]
    assert fields["ID"] == {"type": "integer", "isRequired": False, "isReadOnly": True,
                            "isImmutable": False, "isMultiple": False, "isDynamic": False,
                            "title": "ID"}
    assert fields["CATEGORY_ID"]["isImmutable"] is True
    assert fields["STAGE_ID"]["statusType"] == "DEAL_STAGE"
    user_fields = [name for name in fields if name.startswith("UF_CRM_")]
    assert len(user_fields) >= 2
    assert all(fields[n]["isDynamic"] and "listLabel" in fields[n] and "formLabel" in fields[n]
               for n in user_fields)


def test_add_update_delete_and_errors(sim: PortalSimulator) -> None:
    errors = fixture_json("errors_examples.json")
    added = call(sim, "crm.deal.add", {"fields": {"TITLE": "REST", "OPPORTUNITY": "250.5",
                                                  "STAGE_ID": "C1:NEW"}}).json()
    deal_id = added["result"]
    assert isinstance(deal_id, int)
    deal = sim.portal.get_deal(deal_id)
    assert deal is not None
    assert deal["CATEGORY_ID"] == "1" and deal["OPPORTUNITY"] == "250.50"
    before = deal["DATE_MODIFY"]
    sim.portal.clock_offset = 5
    updated = call(sim, "crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "C1:WON",
                                                                       "CATEGORY_ID": 0,
                                                                       "DATE_CREATE": "2001-01-01"}})
    assert updated.json()["result"] is True
    deal = sim.portal.get_deal(deal_id)
    assert deal["STAGE_ID"] == "C1:WON" and deal["CLOSED"] == "Y" and deal["STAGE_SEMANTIC_ID"] == "S"
    assert deal["CATEGORY_ID"] == "1"  # immutable through crm.deal.update
    assert deal["DATE_MODIFY"] > before and not deal["DATE_CREATE"].startswith("2001")
    assert call(sim, "crm.deal.delete", {"id": deal_id}).json()["result"] is True
    missing = call(sim, "crm.deal.get", {"id": deal_id})
    assert missing.status_code == 400 and missing.json() == errors["crm_deal_get_not_found"]["body"]
    bad = call(sim, "crm.deal.get", {"id": "abc"})
    assert bad.status_code == 400 and bad.json() == errors["crm_deal_get_bad_id"]["body"]
    unknown = call(sim, "crm.deal.frobnicate")
    assert unknown.status_code == 404
    assert unknown.json() == errors["ERROR_METHOD_NOT_FOUND"]["body"]


def test_product_rows_roundtrip_updates_deal(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({"TITLE": "Товары"})
    sim.portal.clock_offset = 3
    rows = [{"PRODUCT_NAME": "Лист 2мм", "PRICE": 899.1, "QUANTITY": 2, "MEASURE_CODE": 796},
            {"PRODUCT_NAME": "Уголок", "PRICE": "100", "QUANTITY": 1}]
    assert call(sim, "crm.deal.productrows.set", {"id": deal_id, "rows": rows}).json()["result"] is True
    got = call(sim, "crm.deal.productrows.get", {"id": deal_id}).json()["result"]
    assert [r["PRODUCT_NAME"] for r in got] == ["Лист 2мм", "Уголок"]
    assert got[0]["OWNER_ID"] == str(deal_id) and got[0]["OWNER_TYPE"] == "D"
    assert isinstance(got[0]["ID"], str) and got[0]["PRICE"] == 899.1 and got[1]["PRICE"] == 100
    assert got[0]["PRICE_ACCOUNT"] == "899.10" and got[0]["MEASURE_NAME"] == "шт"
    deal = sim.portal.get_deal(deal_id)
    assert deal["OPPORTUNITY"] == "1898.20"
    assert deal["DATE_MODIFY"] > deal["DATE_CREATE"]


def test_portal_offset_and_clock_skew() -> None:
    with PortalSimulator(rate_limit=False, utc_offset="+05:00") as sim:
        sim.portal.clock_offset = -7200
        deal_id = sim.portal.add_deal({"CLOSEDATE": "2025-03-14"})
        body = call(sim, "crm.deal.get", {"id": deal_id}).json()
        deal = body["result"]
        assert deal["DATE_CREATE"].endswith("+05:00") and deal["CLOSEDATE"] == "2025-03-14T00:00:00+05:00"
        assert body["time"]["date_start"].endswith("+05:00")
        assert abs(body["time"]["start"] - (time.time() - 7200)) < 5
        assert sim.portal.now().utcoffset().total_seconds() == 5 * 3600
