"""``python -m vigie.ops.artifacts``: every deployment file against the registry of pieces."""

from __future__ import annotations

import sys

from vigie.ops.artifacts import check_all


def main() -> int:
    problems = [p for found in check_all().values() for p in found]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
