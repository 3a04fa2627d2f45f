"""Latency from a level event published to Redis to its webhook notification received.

Starts a real redis-server, the alerting service under gunicorn and an HTTP receiver on loopback,
then publishes N level events (each one a transition: 50 assets flipping NORMAL <-> ALERTE) at a
steady rate, and prints the distribution of publish -> webhook-received times. Both ends use this
process's monotonic clock. Bounded: it stops after N events or the timeout.

    python -m bench.alerting_latency [--events 1000] [--rate 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.alerting_setup import alerting_bench
from vigie.contract.level_event import LevelEvent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=Path("var/bench/alerting-latency.json"))
    args = parser.parse_args()

    with alerting_bench(args.database_url) as bench:
        redis, receiver = bench.redis, bench.receiver
        client = redis.client()
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        published: dict[tuple[str, str], float] = {}
        period = 1.0 / args.rate
        start = time.monotonic()
        for i in range(args.events):
            asset, hour = f"B{i % 50:02d}", i // 50
            level = "ALERTE" if hour % 2 == 0 else "NORMAL"  # every event changes the level
            observed = t0 + timedelta(hours=hour)
            event = LevelEvent.new(
                service="bench", asset_id=asset, level=level, observed_at=observed, value=1.0,
                unit="u", threshold=1.0, model_version="bench", message="bench",
            )  # fmt: skip
            time.sleep(max(0.0, start + i * period - time.monotonic()))
            published[(asset, observed.isoformat())] = time.monotonic()
            client.xadd("vigie:levels", {"event": event.to_json()})
        receiver.wait_for_requests(args.events, timeout=args.timeout)
        latencies = []
        for req in receiver.requests:
            body = req.json()
            observed = datetime.fromisoformat(body["vigie"]["observed_at"]).astimezone(UTC)
            key = (body["alerts"][0]["labels"]["asset_id"], observed.isoformat())
            latencies.append((req.received_at - published[key]) * 1000)
        elapsed = time.monotonic() - start
        result = {
            "events": args.events,
            "rate_per_s": args.rate,
            "database": "postgresql" if args.database_url else "sqlite",
            "received": len(latencies),
            "median_ms": round(statistics.median(latencies), 2),
            "p90_ms": round(percentile(latencies, 0.90), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2),
            "elapsed_s": round(elapsed, 2),
        }
        print(json.dumps(result))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
