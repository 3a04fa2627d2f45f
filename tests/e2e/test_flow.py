"""A prediction through the gateway becomes a level event, an alert, a webhook and an email."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.e2e.conftest import OVER_PERMIT, WEBHOOK_SECRET
from tests.services.turbine_nox.synthetic import measurements, turbine_frame
from tests.support.fleet import Fleet
from tests.support.receivers import HttpReceiver, SmtpSink
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration

FRAME = turbine_frame(rows_per_year=50, years=(2015,), seed=7)


def test_a_critique_forecast_reaches_the_webhook_and_the_mailbox(fleet: Fleet) -> None:
    webhook: HttpReceiver = fleet.extra["webhook"]
    smtp: SmtpSink = fleet.extra["smtp"]
    admin = {"Authorization": f"Bearer {fleet.token('subscribers:admin alerts:read')}"}
    with fleet.client() as c:
        for channel, target in (
            ("webhook", webhook.url + "/vigie"),
            ("email", "ops@plant.example"),
        ):
            r = c.post(
                "/alerting/v1/subscribers",
                headers=admin,
                json={"name": f"e2e-{channel}", "channel": channel, "target": target,
                      "language": "en", "min_level": "ALERTE", "services": ["turbine-nox"],
                      "assets": [OVER_PERMIT]},
            )  # fmt: skip
            assert r.status_code == 201, r.text

        token = fleet.token("predict:turbine-nox")
        r = c.post(
            "/turbine-nox/v1/predict",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-flow-1"},
            json={"asset_id": OVER_PERMIT, "measurements": measurements(FRAME, slice(0, 3))},
        )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["level"] == "CRITIQUE" and len(out["predictions"]) == 3
    assert all(p["nox_mg_m3"] > 1.0 for p in out["predictions"])  # the asset's permit

    [hook] = webhook.wait_for_requests(1, timeout=30)
    expected = hmac.new(WEBHOOK_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-vigie-signature"] == f"sha256={expected}"
    payload = hook.json()
    assert payload["status"] == "firing" and payload["vigie"]["kind"] == "opened"
    [alert] = payload["alerts"]
    assert alert["labels"]["service"] == "turbine-nox"
    assert alert["labels"]["asset_id"] == OVER_PERMIT
    assert alert["labels"]["level"] == "CRITIQUE"

    [mail] = smtp.wait_for_messages(1, timeout=30)
    assert mail.rcpt_tos == ["ops@plant.example"]
    subject = mail.message["Subject"]
    assert "CRITIQUE" in subject and OVER_PERMIT in subject
    body = mail.message.get_content()
    assert OVER_PERMIT in body and "turbine-nox" in body and "CRITIQUE" in body

    # The alert is in alerting's history, reachable through the gateway.
    with fleet.client() as c:
        alerts = wait_until(
            lambda: c.get("/alerting/v1/alerts", headers=admin).json()["items"],
            what="the alert in the history",
        )
    [stored] = [a for a in alerts if a["asset_id"] == OVER_PERMIT]
    assert stored["level"] == "CRITIQUE" and stored["status"] == "open"
