"""HTTP helpers shared by every service."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    """JSON rendered by orjson: fast, and datetimes come out as RFC 3339. A JSONResponse for
    FastAPI too, which then documents each route's response model (for any other response
    class it declares a bare string)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)
