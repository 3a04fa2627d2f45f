"""What the routes of a prediction service receive (FastAPI dependencies)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vigie.contract.errors import ServiceUnavailable
from vigie.serve.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The runtime the app's lifespan built (see :func:`vigie.serve.runtime.open_runtime`); a
    503 for a request that arrives before it (a server that skipped the lifespan)."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceUnavailable("starting: the runtime is not built yet")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
