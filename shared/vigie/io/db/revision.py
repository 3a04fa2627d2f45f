"""Write a new revision into one database's script directory (``vigie db revision``).

After changing the tables (the ORM models), autogenerate the revision: Alembic compares the
models with a throwaway SQLite database upgraded to head (or with ``url``), writes the file,
and ruff, when installed, fixes and formats it. Read it before committing: autogenerate misses
renames and some type changes. Revision ids are numbers (``0002`` after ``0001``) while the head
is one.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from vigie.io.db.migrations import Migrations
from vigie.io.db.runner import one_off_engine, upgrade


def next_rev_id(migrations: Migrations) -> str | None:
    """``0002`` after ``0001``; None (Alembic's random id) when the head is not a number."""
    head = migrations.head
    if head is None:
        return "0001"
    return f"{int(head) + 1:04d}" if head.isdigit() else None


def _with_ruff(cfg: Config) -> Config:
    """Have Alembic run ruff (fix, then format) on the file it writes, when ruff is installed."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff:
        cfg.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
        for name, options in [
            ("ruff_fix", "check --fix --exit-zero --quiet REVISION_SCRIPT_FILENAME"),
            ("ruff_format", "format --quiet REVISION_SCRIPT_FILENAME"),
        ]:
            cfg.set_section_option("post_write_hooks", f"{name}.type", "exec")
            cfg.set_section_option("post_write_hooks", f"{name}.executable", ruff)
            cfg.set_section_option("post_write_hooks", f"{name}.options", options)
    return cfg


def new_revision(
    migrations: Migrations,
    message: str,
    *,
    autogenerate: bool,
    url: str | None = None,
    rev_id: str | None = None,
) -> Path:
    """Write a new revision file into ``versions/``; returns its path."""
    rev_id = rev_id or next_rev_id(migrations)
    if not autogenerate:
        script = command.revision(_with_ruff(migrations.config()), message=message, rev_id=rev_id)
    else:
        with tempfile.TemporaryDirectory(prefix="vigie-alembic-") as tmp:
            target = url or f"sqlite:///{Path(tmp) / 'head.db'}"
            upgrade(target, migrations)
            with one_off_engine(target, write=False) as engine, engine.begin() as conn:
                script = command.revision(
                    _with_ruff(migrations.config(conn)),
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                )
    if script is None or isinstance(script, list):
        raise RuntimeError(f"{migrations.name}: Alembic wrote no single revision")
    migrations.refresh()
    return Path(script.path)
