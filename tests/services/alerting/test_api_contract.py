"""Every answer of the alerting API, success or error, is what ``/openapi.json`` declares.

One walk through every operation with real data (subscribers, alerts from level events,
deliveries sent to a real webhook and dead ones to an SMTP port nobody listens on, silences),
each answer checked by :class:`~tests.services.alerting.openapi_contract.Contract`.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.services.alerting.conftest import Alerting
from tests.services.alerting.openapi_contract import Contract
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


def clients(alerting: Alerting, contract: Contract) -> tuple[httpx.Client, httpx.Client]:
    """(every scope, read only), both checked."""
    assert alerting.service is not None
    full, read = alerting.client(), alerting.client()
    read.headers["Authorization"] = f"Bearer {alerting.token('alerts:read')}"
    for c in (full, read):
        c.event_hooks = contract.hooks()
    return full, read


def alert_with_deliveries(c: httpx.Client) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        for a in c.get("/v1/alerts").json()["items"]:
            detail: dict[str, Any] = c.get(f"/v1/alerts/{a['id']}").json()
            if sorted(d["status"] for d in detail["deliveries"]) == ["dead", "sent"]:
                return detail
        return None

    return wait_until(done, timeout=30, interval=0.2, what="a sent and a dead delivery")  # type: ignore[no-any-return]


def test_every_answer_matches_the_openapi_document(alerting: Alerting) -> None:
    alerting.env["VIGIE_MAX_ATTEMPTS"] = "1"  # the e-mail delivery dies at its first failure
    alerting.start()
    assert alerting.service is not None
    contract = Contract.of(alerting.service.url)
    full, read = clients(alerting, contract)
    anonymous = httpx.Client(
        base_url=alerting.service.url, timeout=30, event_hooks=contract.hooks()
    )
    hook = alerting.webhook.url + "/hook"
    with full as c, read, anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}
        assert anonymous.get("/v1/alerts").status_code == 401
        assert read.get("/v1/subscribers").status_code == 403

        # subscribers
        def add(name: str, channel: str, target: str, **extra: str) -> httpx.Response:
            body = {"name": name, "channel": channel, "target": target, **extra}
            return c.post("/v1/subscribers", json=body)

        web, mail = add("web", "webhook", hook), add("mail", "email", "ops@example.org",
                                                     min_level="NORMAL")  # fmt: skip
        assert (web.status_code, mail.status_code) == (201, 201), (web.text, mail.text)
        web_id, mail_id = web.json()["id"], mail.json()["id"]
        assert add("web", "webhook", hook).status_code == 409
        assert add("x", "sms", "06").status_code == 422
        assert c.post("/v1/subscribers", content=b"{", headers=JSON).status_code == 400
        assert [s["name"] for s in c.get("/v1/subscribers").json()["items"]] == ["web", "mail"]
        assert c.get(f"/v1/subscribers/{web_id}").json()["target"] == hook
        assert c.patch(f"/v1/subscribers/{web_id}", json={"language": "en"}).status_code == 200
        assert c.patch(f"/v1/subscribers/{web_id}", json={"name": "mail"}).status_code == 409
        assert c.get("/v1/subscribers/4242").status_code == 404
        assert c.post(f"/v1/subscribers/{web_id}/test").json()["sent"] is True
        failed = c.post(f"/v1/subscribers/{mail_id}/test").json()
        assert failed["sent"] is False and failed["reason"]

        # an alert, its deliveries (one sent, one dead) and their attempts
        alerting.publish(alerting.event("ALERTE"))
        detail = alert_with_deliveries(c)
        assert [t["kind"] for t in detail["transitions"]] == ["opened"]
        assert all(len(d["attempt_log"]) == 1 for d in detail["deliveries"])
        alert_id = detail["id"]
        assert c.get("/v1/alerts", params={"status": "open", "limit": 1}).json()["next_cursor"] == (
            alert_id
        )
        assert c.get("/v1/alerts", params={"level": "HIGH"}).status_code == 422
        assert c.get("/v1/alerts/4242").status_code == 404
        acked = c.post(f"/v1/alerts/{alert_id}/ack", json={"comment": "on it"})
        assert acked.json()["acknowledged_by"] == "ops"
        assert c.post(f"/v1/alerts/{alert_id}/ack", json={}).status_code == 409
        assert c.post("/v1/alerts/4242/ack", json={}).status_code == 404
        assert c.post(f"/v1/alerts/{alert_id}/ack", content=b"[", headers=JSON).status_code == 400

        # deliveries: the dead-letter view and a retry
        dead = c.get("/v1/deliveries", params={"status": "dead"}).json()["items"]
        assert [d["subscriber_id"] for d in dead] == [mail_id]
        assert c.get("/v1/deliveries", params={"limit": 1}).json()["next_cursor"] is not None
        assert c.post(f"/v1/deliveries/{dead[0]['id']}/retry").json()["status"] == "pending"
        sent = next(d for d in detail["deliveries"] if d["status"] == "sent")
        assert c.post(f"/v1/deliveries/{sent['id']}/retry").status_code == 409
        assert c.post("/v1/deliveries/4242/retry").status_code == 404
        assert c.get("/v1/deliveries", params={"status": "lost"}).status_code == 422

        # silences
        silence = c.post("/v1/silences", json={"asset_id": "T9", "duration_s": 60, "comment": "x"})
        assert silence.status_code == 201 and silence.json()["active"] is True
        assert c.post("/v1/silences", json={"comment": "x", "duration_s": 60}).status_code == 422
        assert [
            s["id"] for s in c.get("/v1/silences", params={"active": True}).json()["items"]
        ] == [silence.json()["id"]]
        assert c.delete(f"/v1/silences/{silence.json()['id']}").json()["active"] is False
        assert c.delete("/v1/silences/4242").status_code == 404

        # removing subscribers: one with deliveries is disabled, one without is deleted
        lone = add("lone", "webhook", hook)
        assert c.delete(f"/v1/subscribers/{lone.json()['id']}").status_code == 204
        assert c.delete(f"/v1/subscribers/{web_id}").status_code == 204
        assert c.get(f"/v1/subscribers/{web_id}").json()["enabled"] is False
        assert c.delete("/v1/subscribers/4242").status_code == 404

    assert contract.unexercised_successes() == []


def test_database_down_is_503_in_the_envelope(alerting: Alerting, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        # An SQLite file cannot go away under an open connection, and a lock only fails after
        # the 30 s busy timeout; PostgreSQL can be dropped for real.
        pytest.skip("needs a database that can disappear under the service")
    alerting.start()
    assert alerting.service is not None
    contract = Contract.of(alerting.service.url)
    server = os.environ["VIGIE_TEST_POSTGRES_URL"]  # what the database_url fixture created it on
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{make_url(database_url).database}" WITH (FORCE)'))
    admin.dispose()
    with alerting.client() as c:
        c.event_hooks = contract.hooks()
        for path in ("/v1/alerts", "/v1/silences", "/v1/deliveries", "/v1/subscribers"):
            r = c.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["error"] == {
                "code": "service_unavailable", "message": "database unavailable", "details": []
            }  # fmt: skip
            assert r.headers["Retry-After"] == "5"
        ready = c.get("/readyz")
        assert (
            ready.status_code == 503 and "database unreachable" in ready.json()["error"]["message"]
        )
