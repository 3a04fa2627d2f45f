"""Schemathesis against one piece's own port (not through nginx, whose 413/429 are its own):
every check, a fixed seed, a bounded number of examples."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass(frozen=True)
class FuzzRun:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def totals(self) -> str:
        """Schemathesis's own count line, e.g. "253 generated, 253 passed"."""
        lines = [ln.strip() for ln in self.output.splitlines() if " generated" in ln]
        return lines[-1] if lines else "no totals printed"


def fuzz(
    base_url: str,
    token: str,
    *,
    exclude: tuple[str, ...] = (),
    max_examples: int = 25,
    seed: int = 20261208,
    timeout_s: float = 240,
) -> FuzzRun:
    """``schemathesis run --checks all`` on ``base_url/openapi.json`` with a bearer ``token``;
    ``exclude`` lists operation ids left out."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{base_url}/openapi.json", "--url", base_url,
        "--checks", "all", "--seed", str(seed), "--max-examples", str(max_examples),
        "--header", f"Authorization: Bearer {token}",
        "--request-timeout", "20", "--no-shrink",
    ]  # fmt: skip
    for operation in exclude:
        command += ["--exclude-operation-id", operation]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    return FuzzRun(done.returncode, done.stdout + done.stderr)
