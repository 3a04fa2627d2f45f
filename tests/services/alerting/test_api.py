"""The alerting HTTP API: subscribers, scopes, silences, alerts pages, input bounds."""

from __future__ import annotations

import httpx
import pytest

from tests.services.alerting.conftest import Alerting
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration


def test_subscribers_crud_validation_and_test_notification(alerting: Alerting) -> None:
    alerting.start()
    hook = alerting.webhook.url + "/hook"
    with alerting.client() as c:
        r = c.post("/v1/subscribers", json={"name": "ops", "channel": "webhook", "target": hook})
        assert r.status_code == 201, r.text
        sub = r.json()
        assert (sub["min_level"], sub["language"], sub["enabled"]) == ("ALERTE", "fr", True)
        dup = c.post("/v1/subscribers", json={"name": "ops", "channel": "webhook", "target": hook})
        assert dup.status_code == 409

        bad = {
            "email": ("email", "not-an-address"),
            "sms": ("sms", "0612345678"),
            "webhook": ("webhook", "ftp://example.org/x"),
        }
        for name, (channel, target) in bad.items():
            r = c.post("/v1/subscribers", json={"name": name, "channel": channel, "target": target})
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error"]["details"][0]["field"] == "body.target"
        sms = {"name": "x", "channel": "sms", "target": "+33612345678"}
        for extra, field in [
            ({"channel": "pigeon"}, "body.channel"),
            ({"colour": 1}, "body.colour"),
            ({"min_level": "HIGH"}, "body.min_level"),
            ({"language": "de"}, "body.language"),
        ]:
            r = c.post("/v1/subscribers", json=sms | extra)
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field, (
                r.text
            )

        r = c.patch(
            f"/v1/subscribers/{sub['id']}", json={"min_level": "CRITIQUE", "language": "en"}
        )
        assert r.status_code == 200 and r.json()["min_level"] == "CRITIQUE"
        assert c.patch(f"/v1/subscribers/{sub['id']}", json={"target": "nope"}).status_code == 422
        assert [s["name"] for s in c.get("/v1/subscribers").json()["items"]] == ["ops"]

        r = c.post(f"/v1/subscribers/{sub['id']}/test")
        assert r.status_code == 200 and r.json()["sent"] is True, r.text
        [req] = alerting.webhook.wait_for_requests(1)
        assert req.json()["alerts"][0]["labels"]["alertname"] == "VigieTest"

        mail = c.post(
            "/v1/subscribers", json={"name": "m", "channel": "email", "target": "a@b.example"}
        )
        r = c.post(f"/v1/subscribers/{mail.json()['id']}/test")  # no SMTP server is running
        assert r.status_code == 200 and r.json()["sent"] is False and r.json()["reason"]

        assert c.delete(f"/v1/subscribers/{sub['id']}").status_code == 204
        assert c.get(f"/v1/subscribers/{sub['id']}").status_code == 404
        assert c.get("/v1/subscribers/999999").json()["error"]["code"] == "not_found"


def test_scopes(alerting: Alerting) -> None:
    alerting.start()
    assert alerting.service is not None
    url = alerting.service.url

    def call(method: str, path: str, scopes: str | None, **kw: object) -> int:
        headers = {} if scopes is None else {"Authorization": f"Bearer {alerting.token(scopes)}"}
        return httpx.request(method, url + path, headers=headers, timeout=10, **kw).status_code  # type: ignore[arg-type]

    assert call("GET", "/v1/alerts", None) == 401
    assert call("GET", "/v1/alerts", "alerts:read") == 200
    assert call("GET", "/v1/alerts", "subscribers:admin") == 403
    assert call("GET", "/v1/subscribers", "alerts:read") == 403
    assert call("POST", "/v1/alerts/1/ack", "alerts:read", json={}) == 403
    assert call("POST", "/v1/alerts/1/ack", "alerts:ack", json={}) == 404
    assert call("POST", "/v1/silences", "alerts:read", json={}) == 403
    assert call("GET", "/healthz", None) == 200 and call("GET", "/readyz", None) == 200


def test_silences_mute_then_expire(alerting: Alerting) -> None:
    alerting.start()
    alerting.subscribe("webhook", alerting.webhook.url + "/hook")
    with alerting.client() as c:
        assert c.post("/v1/silences", json={"comment": "x", "duration_s": 60}).status_code == 422
        assert c.post("/v1/silences", json={"asset_id": "T1", "comment": "x"}).status_code == 422
        r = c.post(
            "/v1/silences", json={"asset_id": "T1", "duration_s": 3600, "comment": "filter swap"}
        )
        assert r.status_code == 201, r.text
        silence = r.json()
        assert silence["author"] == "ops" and silence["active"] is True
    alerting.publish(alerting.event("ALERTE"))
    alerting.publish(alerting.event("ALERTE", asset="T2"))  # not silenced
    [req] = alerting.webhook.wait_for_requests(1)
    assert req.json()["alerts"][0]["labels"]["asset_id"] == "T2"
    muted = alerting.wait_alert(
        lambda a: (
            a["asset_id"] == "T1"
            and a["deliveries"]
            and a["deliveries"][0]["status"] == "suppressed"
        ),
        what="a suppressed delivery",
    )
    assert "filter swap" in muted["deliveries"][0]["reason"]
    with alerting.client() as c:
        assert (
            'vigie_notifications_total{channel="webhook",outcome="suppressed"} 1.0'
            in c.get("/metrics").text
        )
    with alerting.client() as c:
        assert c.delete(f"/v1/silences/{silence['id']}").json()["active"] is False
        assert c.get("/v1/silences", params={"active": True}).json()["items"] == []
    alerting.publish(alerting.event("CRITIQUE"))
    wait_until(
        lambda: len(alerting.webhook.requests) == 2, what="the escalation, no longer silenced"
    )


def test_alerts_filters_and_pages(alerting: Alerting) -> None:
    alerting.start()
    alerting.publish(*(alerting.event("ALERTE", asset=f"P{i}") for i in range(5)))
    wait_until(lambda: len(alerting.alerts()) == 5, what="5 alerts")
    seen, cursor = [], None
    while True:
        with alerting.client() as c:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = c.get("/v1/alerts", params=params).json()
        seen += [a["asset_id"] for a in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"P{i}" for i in range(5)] and len(seen) == 5
    assert [a["asset_id"] for a in alerting.alerts(asset_id="P3")] == ["P3"]
    assert alerting.alerts(status="resolved") == []
    with alerting.client() as c:
        assert c.get("/v1/alerts", params={"status": "bogus"}).status_code == 422
        assert c.get("/v1/alerts/424242").status_code == 404


# Every id column is an SQL INTEGER (32-bit on PostgreSQL): a larger id names nothing and must be
# a 422 naming its field, before any driver sees it (SQLite overflows past 64 bits, PostgreSQL
# past 32), never a 500. The database's real range is checked by test_id_columns_are_int32.
ID_ROUTES = [
    ("GET", "/v1/alerts/{}", "path.alert_id"),
    ("POST", "/v1/alerts/{}/ack", "path.alert_id"),
    ("DELETE", "/v1/silences/{}", "path.silence_id"),
    ("GET", "/v1/subscribers/{}", "path.sub_id"),
    ("PATCH", "/v1/subscribers/{}", "path.sub_id"),
    ("DELETE", "/v1/subscribers/{}", "path.sub_id"),
    ("POST", "/v1/subscribers/{}/test", "path.sub_id"),
    ("POST", "/v1/deliveries/{}/retry", "path.delivery_id"),
]
INT32_MAX = 2**31 - 1


def test_out_of_range_ids_are_422_with_the_field_path(alerting: Alerting) -> None:
    alerting.start()
    with alerting.client() as c:
        for method, template, field in ID_ROUTES:
            body = {} if method in ("POST", "PATCH") else None
            for too_large in (INT32_MAX + 1, 2**63, 3612669049928547827712):
                r = c.request(method, template.format(too_large), json=body)
                assert r.status_code == 422, (method, template, too_large, r.text)
                assert r.json()["error"]["details"][0]["field"] == field, r.text
            r = c.request(method, template.format(0), json=body)
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field
            r = c.request(method, template.format(INT32_MAX), json=body)
            assert r.status_code == 404, (method, template, r.text)
        for path in ("/v1/alerts", "/v1/deliveries"):
            r = c.get(path, params={"cursor": INT32_MAX + 1})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"][0]["field"] == "query.cursor"
            assert c.get(path, params={"cursor": INT32_MAX}).json()["items"] == []


def test_text_a_database_cannot_store_is_422(alerting: Alerting) -> None:
    """NUL is refused by PostgreSQL text columns: a client's NUL is a 422, on SQLite too."""
    alerting.start()
    alerting.publish(alerting.event("ALERTE"))
    wait_until(lambda: alerting.alerts(), what="an alert")
    hook = alerting.webhook.url + "/hook"
    with alerting.client() as c:
        cases = [
            ("POST", "/v1/silences", {"asset_id": "T1", "duration_s": 60, "comment": "a\x00"},
             "body.comment"),
            ("POST", "/v1/alerts/1/ack", {"comment": "\x00"}, "body.comment"),
            ("POST", "/v1/subscribers", {"name": "a\x00", "channel": "webhook", "target": hook},
             "body.name"),
        ]  # fmt: skip
        for method, path, body, field in cases:
            r = c.request(method, path, json=body)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["details"][0]["field"] == field
        r = c.get("/v1/alerts", params={"asset_id": "T1\x00"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "query.asset_id"
        assert c.get("/v1/alerts", params={"asset_id": "T1"}).json()["items"][0]["asset_id"] == "T1"


def test_silence_times_are_rfc3339_strings_and_ordered(alerting: Alerting) -> None:
    alerting.start()
    with alerting.client() as c:
        base = {"asset_id": "T1", "comment": "x"}
        r = c.post("/v1/silences", json=base | {"starts_at": 0, "duration_s": 60})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.starts_at"
        backwards = {"starts_at": "2026-06-01T10:00:00Z", "ends_at": "2026-06-01T09:00:00Z"}
        r = c.post("/v1/silences", json=base | backwards)
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.ends_at"
        # Beyond year 9999 once in UTC: "for ever", not an overflow.
        for_ever = {
            "starts_at": "2026-06-01T10:00:00+02:00",
            "ends_at": "9999-12-31T23:00:00-05:00",
        }
        r = c.post("/v1/silences", json=base | for_ever)
        assert r.status_code == 201, r.text
        assert (r.json()["starts_at"], r.json()["ends_at"]) == (
            "2026-06-01T08:00:00Z", "9999-12-31T23:59:59.999999Z"
        )  # fmt: skip


def test_405_allows_every_method_of_the_path(alerting: Alerting) -> None:
    alerting.start()
    with alerting.client() as c:
        for path, allow in [
            ("/v1/silences", "GET, POST"),
            ("/v1/subscribers", "GET, POST"),
            ("/v1/subscribers/1", "DELETE, GET, PATCH"),
            ("/v1/alerts/1/ack", "POST"),
        ]:
            r = c.put(path)
            assert r.status_code == 405 and r.headers["Allow"] == allow, (path, r.headers)
            assert r.json()["error"]["code"] == "method_not_allowed"


def test_id_columns_are_int32() -> None:
    """The API's id bounds are the columns' (api/deps.py INT32_MAX): widening a column to
    BIGINT must widen them too."""
    from sqlalchemy import BigInteger, Integer

    from vigie_services.alerting.api import deps
    from vigie_services.alerting.models import Base

    assert deps.INT32_MAX == INT32_MAX
    ids = [c for t in Base.metadata.tables.values() for c in t.columns if c.name.endswith("id")]
    integer_ids = [c for c in ids if isinstance(c.type, Integer)]
    assert {"alerts.id", "silences.id", "subscribers.id", "deliveries.id"} <= {
        f"{c.table.name}.{c.name}" for c in integer_ids
    }
    assert not [c for c in integer_ids if isinstance(c.type, BigInteger)]
