"""Ctrl-C stops the whole fleet cleanly (runs after the other end-to-end modules)."""

from __future__ import annotations

import pytest

from tests.support.fleet import Fleet

pytestmark = pytest.mark.integration


def test_ctrl_c_stops_every_process_and_frees_every_port(fleet: Fleet) -> None:
    assert fleet.proc is not None
    assert sorted(fleet.listening()) == sorted(
        [*fleet.ports.values(), fleet.http_port, fleet.https_port, fleet.redis_port]
    )
    assert len(fleet.processes()) > 10  # launcher, honcho, Redis, nginx, the gunicorns...
    code = fleet.interrupt(timeout=60)
    assert code == 0, fleet.log()[-3000:]
    assert fleet.listening() == []
    assert "Vigie fleet ready" in fleet.log()
    assert fleet.processes() == []  # nothing left, in any session
