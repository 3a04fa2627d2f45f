"""Request, event and prediction ids: well-formed, distinct, and distinct across forked workers."""

from __future__ import annotations

import os
import uuid

from vigie.contract.ids import hex_run, new_hex, new_uuid


def test_uuids_are_version_4_and_distinct() -> None:
    ids = [new_uuid() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[:100])


def test_a_run_of_row_ids_is_distinct_and_fits_the_column() -> None:
    rows = hex_run(5000)
    assert len(set(rows)) == 5000
    assert all(len(r) == 32 and int(r, 16) >= 0 for r in rows)
    assert set(rows).isdisjoint(hex_run(5000))
    assert len(new_hex()) == 32


def test_forked_workers_do_not_repeat_each_other() -> None:
    # gunicorn forks its workers from one master: each must draw its own ids.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_hex() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    mine = [new_hex() for _ in range(3)]
    assert len(child) == 3 and set(child).isdisjoint(mine)
