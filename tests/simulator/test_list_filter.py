"""crm.deal.list: select masks, filter prefixes, datetimes with offsets, order, paging."""

from __future__ import annotations

from deal_monitor.simulator import PortalSimulator

from .conftest import call, fixture_json


def _ids(response) -> list[int]:
    return [int(row["ID"]) for row in response.json()["result"]]


def test_paging_total_next_and_start_rounding(sim: PortalSimulator) -> None:
    sim.portal.bulk_add(120)
    first = call(sim, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}})
    body = first.json()
    assert body["total"] == 120 and body["next"] == 50 and len(body["result"]) == 50
    assert list(body) == ["result", "next", "total", "time"]
    last = call(sim, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}, "start": 100}).json()
    assert len(last["result"]) == 20 and "next" not in last and last["total"] == 120
    rounded = call(sim, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}, "start": 73})
    assert _ids(rounded)[0] == 51  # start is rounded down to a page boundary


def test_start_minus_one_fast_mode(sim: PortalSimulator) -> None:
    sim.portal.bulk_add(130)
    body = call(sim, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"},
                                       "filter": {">ID": 60}, "start": -1}).json()
    assert [int(r["ID"]) for r in body["result"]] == list(range(61, 111))
    assert body["total"] == 0 and "next" not in body


def test_list_shape_like_fixture(sim: PortalSimulator) -> None:
    sample = fixture_json("crm_deal_list_docs.json")
    select = list(sample["result"][0])
    sim.portal.add_deal({"TITLE": "[А] Сделка", "TYPE_ID": "COMPLEX", "CATEGORY_ID": 1,
                         "OPPORTUNITY": "19999.99", "IS_MANUAL_OPPORTUNITY": "Y"})
    body = call(sim, "crm.deal.list", {"select": select}).json()
    row = body["result"][0]
    assert list(row) == select
    assert row["STAGE_ID"] == "C1:NEW" and row["OPPORTUNITY"] == "19999.99" and row["CATEGORY_ID"] == "1"
    assert body["total"] == 1 and "next" not in body


def test_select_masks(sim: PortalSimulator) -> None:
    sim.portal.add_deal({"UF_CRM_1721244482250": "склад"})
    star = call(sim, "crm.deal.list", {"select": ["*"]}).json()["result"][0]
    assert "TITLE" in star and not any(k.startswith("UF_") for k in star)
    uf = call(sim, "crm.deal.list", {"select": ["ID", "UF_*"]}).json()["result"][0]
    assert uf["UF_CRM_1721244482250"] == "склад" and "TITLE" not in uf
    default = call(sim, "crm.deal.list").json()["result"][0]
    assert "TITLE" in default and "UF_CRM_1721244482250" in default


def test_filter_prefixes(sim: PortalSimulator) -> None:
    a = sim.portal.add_deal({"TITLE": "Поставка молока", "OPPORTUNITY": 100, "ASSIGNED_BY_ID": 1})
    b = sim.portal.add_deal({"TITLE": "Монтаж", "OPPORTUNITY": 5000, "ASSIGNED_BY_ID": 6,
                             "STAGE_ID": "WON"})
    c = sim.portal.add_deal({"TITLE": "Молоко оптом", "OPPORTUNITY": 20000, "ASSIGNED_BY_ID": 9,
                             "CATEGORY_ID": 1})
    cases = [
        ({">OPPORTUNITY": 100}, [b, c]),
        ({">=OPPORTUNITY": 100, "<OPPORTUNITY": 20000}, [a, b]),
        ({"<=OPPORTUNITY": "5000"}, [a, b]),
        ({"=STAGE_ID": "WON"}, [b]),
        ({"STAGE_ID": "NEW"}, [a]),
        ({"!STAGE_ID": "NEW"}, [b, c]),
        ({"!=CATEGORY_ID": 0}, [c]),
        ({"@ASSIGNED_BY_ID": [1, 9]}, [a, c]),
        ({"!@ASSIGNED_BY_ID": [1, 9]}, [b]),
        ({"%TITLE": "МОЛОК"}, [a, c]),
        ({"=%TITLE": "молоко%"}, [c]),
        ({"@ID": [a, c]}, [a, c]),
        ({"CATEGORY_ID": 1, "%TITLE": "опт"}, [c]),
        ({"UNKNOWN_FIELD": 1}, [a, b, c]),
    ]
    for flt, expected in cases:
        response = call(sim, "crm.deal.list", {"filter": flt, "select": ["ID"], "order": {"ID": "ASC"}})
        assert _ids(response) == expected, flt
        form = call(sim, "crm.deal.list", {"filter": flt, "select": ["ID"], "order": {"ID": "ASC"}},
                    as_json=False)
        assert _ids(form) == expected, ("form", flt)


def test_datetime_filters_accept_offsets_and_dates(sim: PortalSimulator) -> None:
    old = sim.portal.add_deal({"DATE_MODIFY": "2024-05-01T10:00:00+03:00",
                               "DATE_CREATE": "2024-05-01T10:00:00+03:00"})
    mid = sim.portal.add_deal({"DATE_MODIFY": "2024-05-02T10:00:00+03:00"})
    new = sim.portal.add_deal({"DATE_MODIFY": "2024-05-03T00:30:00+03:00"})
    assert sim.portal.get_deal(old)["DATE_MODIFY"] == "2024-05-01T10:00:00+03:00"
    cases = [
        ({">DATE_MODIFY": "2024-05-01T10:00:00+03:00"}, [mid, new]),
        ({">=DATE_MODIFY": "2024-05-01T07:00:00+00:00"}, [old, mid, new]),  # same instant in UTC
        ({">DATE_MODIFY": "2024-05-02T06:59:59Z"}, [mid, new]),
        ({">DATE_MODIFY": "2024-05-02"}, [mid, new]),  # midnight portal time
        ({"<DATE_MODIFY": "2024-05-03"}, [old, mid]),
        ({">DATE_MODIFY": "02.05.2024 10:00:00"}, [new]),
        ({">=DATE_MODIFY": "2024-05-02T22:00:00+01:00"}, [new]),
    ]
    for flt, expected in cases:
        response = call(sim, "crm.deal.list", {"filter": flt, "select": ["ID"], "order": {"ID": "ASC"}})
        assert _ids(response) == expected, flt


def test_order_multi_key_and_desc(sim: PortalSimulator) -> None:
    ids = [sim.portal.add_deal({"TITLE": t, "OPPORTUNITY": o})
           for t, o in [("Б", 10), ("А", 30), ("Б", 5), ("В", 30)]]
    body = call(sim, "crm.deal.list", {"select": ["ID"],
                                       "order": {"OPPORTUNITY": "DESC", "TITLE": "ASC"}})
    assert _ids(body) == [ids[1], ids[3], ids[0], ids[2]]
    desc = call(sim, "crm.deal.list", {"select": ["ID"], "order": {"ID": "DESC"}})
    assert _ids(desc) == list(reversed(ids))


def test_bad_filter_type_is_an_error(sim: PortalSimulator) -> None:
    response = call(sim, "crm.deal.list", {"filter": "ID=1"})
    assert response.status_code == 400
    assert response.json() == {"error": "", "error_description": "Parameter 'filter' must be array."}
