"""The committed OpenAPI of every piece (``tests/contract/openapi/<piece>.json``).

``python -m tests.contract.snapshots`` (``make openapi``) rewrites them from the registry's
apps, built with the default settings (nothing is started: an app's document does not need its
lifespan). The snapshot test compares the same documents with the committed ones.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).with_name("openapi")


def documents() -> dict[str, dict[str, Any]]:
    """Each piece's OpenAPI document, from its app factory, in a scratch var dir with dev keys
    (what an app needs to be built: the JWKS its verifier trusts)."""
    from gunicorn.util import import_app

    from vigie.auth.keys import init_keys
    from vigie.ops.registry import load

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        init_keys(root / "keys")
        for name in list(os.environ):
            if name.startswith("VIGIE_"):
                del os.environ[name]
        os.environ.update(
            {"VIGIE_VAR_DIR": str(root / "var"), "VIGIE_KEYS_DIR": str(root / "keys")}
        )
        try:
            return {p.name: import_app(p.app).openapi() for p in load().pieces}
        finally:
            os.environ.clear()
            os.environ.update(saved)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def write() -> list[Path]:
    FOLDER.mkdir(exist_ok=True)
    written = []
    for name, document in documents().items():
        path = FOLDER / f"{name}.json"
        path.write_text(render(document))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    sys.exit(0)
