"""Random ids of what a request creates: request ids, level event ids, prediction ids.

``uuid.uuid4()`` reads ``os.urandom``, a system call that releases the GIL; on a worker whose model
thread holds it (:mod:`vigie.serve.executor`), getting it back can take a switch interval, which
showed
up as 20-30 us per id under load. These come from the process's own generator instead, seeded
from ``os.urandom`` and re-seeded by the ``random`` module in every forked worker: unique, not
secret (none of them is a credential; tokens and client secrets use ``secrets``).
"""

from __future__ import annotations

import random
import uuid

_bits = random.getrandbits


def new_uuid() -> str:
    """A random (version 4) UUID in its usual text form."""
    return str(uuid.UUID(int=_bits(128), version=4))


def new_hex() -> str:
    """32 random hex digits (a request id)."""
    return f"{_bits(128):032x}"


def hex_run(count: int) -> list[str]:
    """``count`` distinct ids for the rows of one request: one random base, then +1 each."""
    base = _bits(128)
    return [f"{(base + i) & _MASK:032x}" for i in range(count)]


_MASK = (1 << 128) - 1
