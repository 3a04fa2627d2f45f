"""How many level events per second the alerting service absorbs, and the CPU each one costs.

Starts a real redis-server, the alerting service under gunicorn (one worker) and an HTTP receiver
on loopback, subscribes one webhook, then publishes N level events in one burst over A assets,
nearly all of them the same level as the asset's current state (``--change-rate`` of them change
it, as when services predict thousands of times a second and an asset rarely changes level).

It reports events/s (until the consumer group has read and acknowledged everything) and the CPU
time of the alerting worker process per event, from ``/proc``: until the stream is drained, and
until every notification the transitions cause has reached the webhook (``total``: the whole cost
of the burst), both net of the worker's idle CPU measured beforehand. It fails unless every
expected transition was notified, once. Linux only. Bounded by ``--timeout``.

The bench's Redis runs with ``appendfsync everysec`` unless ``--redis-fsync always`` (the tests'
setting): publishing the burst then takes a fraction of the time the consumer needs, so events/s
measures the consumer rather than the disk.

    python -m bench.alerting_throughput [--events 20000] [--assets 50] [--change-rate 0.01]
                                        [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.alerting_setup import alerting_bench
from tests.support.servers import wait_until
from vigie.contract.level_event import LevelEvent
from vigie.contract.levels import Level
from vigie_services.alerting.lifecycle import transition_for

STREAM, GROUP = "vigie:levels", "alerting"
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def make_events(n: int, assets: int, change_rate: float, seed: int) -> tuple[list[bytes], int]:
    """The events as stream payloads, and how many transitions they make."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    levels = {f"A{a:03d}": Level.NORMAL for a in range(assets)}
    payloads, transitions = [], 0
    for i in range(n):
        asset = f"A{i % assets:03d}"
        level = levels[asset]
        if rng.random() < change_rate:
            level = rng.choice([lv for lv in Level if lv is not level])
        transitions += transition_for(levels[asset], level) is not None
        levels[asset] = level
        event = LevelEvent.new(
            service="bench", asset_id=asset, level=level.value,
            observed_at=t0 + timedelta(seconds=i // assets), value=float(i), unit="u",
            threshold=1.0, model_version="bench", message=f"bench {i}",
        )  # fmt: skip
        payloads.append(event.to_json())
    return payloads, transitions


def drained(client: object, total: int) -> bool:
    for group in client.xinfo_groups(STREAM):  # type: ignore[attr-defined]
        if group["name"] in (GROUP, GROUP.encode()):
            return bool(group["entries-read"] == total and group["pending"] == 0)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--change-rate", type=float, default=0.01, help="share of level changes")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subscribers", type=int, default=1, help="webhooks notified (0: none)")
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle CPU measured this long")
    parser.add_argument("--redis-fsync", choices=["everysec", "always"], default="everysec")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=Path("var/bench/alerting-throughput.json"))
    args = parser.parse_args()

    payloads, transitions = make_events(args.events, args.assets, args.change_rate, args.seed)
    with alerting_bench(args.database_url, args.subscribers, VIGIE_ACCESS_LOG="false") as bench:
        redis, receiver, service = bench.redis, bench.receiver, bench.service
        assert service.proc is not None
        [worker] = children(service.proc.pid)
        expected = transitions * args.subscribers
        client = redis.client()
        client.config_set("appendfsync", args.redis_fsync)

        c0, t0 = cpu_seconds(worker), time.monotonic()
        time.sleep(args.idle_s)
        idle_cpu_per_s = (cpu_seconds(worker) - c0) / (time.monotonic() - t0)

        c0, t0 = cpu_seconds(worker), time.monotonic()
        for start in range(0, len(payloads), 1000):
            pipe = client.pipeline(transaction=False)
            for payload in payloads[start : start + 1000]:
                pipe.xadd(STREAM, {"event": payload})
            pipe.execute()
        published_s = time.monotonic() - t0
        wait_until(lambda: drained(client, len(payloads)), timeout=args.timeout, interval=0.02,
                   what="every event read and acknowledged")  # fmt: skip
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(worker) - c0
        net_cpu = max(0.0, cpu - idle_cpu_per_s * elapsed)

        receiver.wait_for_requests(expected, timeout=args.timeout)
        total_elapsed = time.monotonic() - t0
        total_cpu = max(0.0, cpu_seconds(worker) - c0 - idle_cpu_per_s * total_elapsed)
        time.sleep(1.0)
        notified = len({r.headers["x-vigie-delivery-id"] for r in receiver.requests})
        result = {
            "events": args.events,
            "assets": args.assets,
            "change_rate": args.change_rate,
            "transitions": transitions,
            "notified": notified,
            "database": "postgresql" if args.database_url else "sqlite",
            "redis_fsync": args.redis_fsync,
            "publish_s": round(published_s, 3),
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(args.events / elapsed, 1),
            "worker_cpu_s": round(cpu, 3),
            "cpu_ms_per_event": round(cpu * 1000 / args.events, 4),
            "net_cpu_ms_per_event": round(net_cpu * 1000 / args.events, 4),
            "worker_cpu_share": round(cpu / elapsed, 3),
            "total_s": round(total_elapsed, 3),
            "total_net_cpu_ms_per_event": round(total_cpu * 1000 / args.events, 4),
            "idle_cpu_share": round(idle_cpu_per_s, 4),
        }
        print(json.dumps(result))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        if notified != expected:
            raise SystemExit(f"expected {expected} notifications, got {notified}")


if __name__ == "__main__":
    main()
