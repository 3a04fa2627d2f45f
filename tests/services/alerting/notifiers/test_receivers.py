"""The reusable loopback peers themselves (tests/support/receivers.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.receivers import HttpReceiver


def test_http_receiver_scripts_answers_in_order() -> None:
    with HttpReceiver() as rx:
        rx.respond_with(204)
        rx.enqueue(500, body=b"first")
        rx.enqueue(429, headers={"Retry-After": "7"})
        with httpx.Client(trust_env=False) as client:
            answers = [client.post(f"{rx.url}/p{i}", content=b"x" * i) for i in range(3)]
        assert [a.status_code for a in answers] == [500, 429, 204]
        assert answers[0].content == b"first" and answers[1].headers["retry-after"] == "7"
        requests = rx.wait_for_requests(3)
        assert [(r.path, r.body) for r in requests] == [("/p0", b""), ("/p1", b"x"), ("/p2", b"xx")]
        assert requests[0].received_at <= requests[1].received_at <= requests[2].received_at
        with pytest.raises(TimeoutError):
            rx.wait_for_requests(4, timeout=0.1)
        rx.clear()
        assert rx.requests == []
