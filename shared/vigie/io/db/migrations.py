"""What the runner needs to know about one database's migrations: :class:`Migrations`.

Each database of the fleet (the prediction log, auth's clients, alerting) has an Alembic script
directory, shipped inside its package (no ``alembic.ini`` anywhere): the package's
``__init__.py`` declares its ``MIGRATIONS``, its ``env.py`` is two lines calling
:func:`vigie.io.db.env.run_env`, and ``versions/`` holds the revisions::

    MIGRATIONS = Migrations(
        name="auth clients",
        script_location=Path(__file__).resolve().parent,
        version_table="alembic_version_auth",
        baseline="0001",
        legacy_tables={"auth_clients": {"client_id", "secret_hash", ...}},
    )
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from vigie.settings import VigieSettings


def _key_of(name: str) -> int:
    # A signed 64-bit number, what pg_advisory_xact_lock takes; stable across processes.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True, eq=False)
class Migrations:
    """One database's Alembic script directory and how the runner treats it.

    - ``name``: what it is, for messages ("prediction log").
    - ``script_location``: the directory holding ``env.py``, ``script.py.mako`` and
      ``versions/`` (the package's own directory).
    - ``version_table``: Alembic's bookkeeping table. Distinct per database kind, since one
      PostgreSQL database may hold several of them (a shared ``VIGIE_DATABASE_URL``).
    - ``baseline``: the first revision: the schema as it was before it had migrations.
    - ``legacy_tables``: the tables (and their columns) that code older than the migrations made
      with ``create_all``. A database holding them all but no version row is stamped at
      ``baseline`` instead of being created again; empty when there was no such code.
    - ``lock_key``: the PostgreSQL advisory lock upgrades take (default: from the version
      table's name); keep an older code's key so that it and the runner take turns.
    - ``url_for``: the database URL of a piece, by name, for ``vigie db`` (default:
      ``VigieSettings().database_url_for(piece)``).
    """

    name: str
    script_location: Path
    version_table: str
    baseline: str
    legacy_tables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    lock_key: int | None = None
    url_for: Callable[[str], str] | None = field(default=None, compare=False)

    @property
    def pg_lock_key(self) -> int:
        return self.lock_key if self.lock_key is not None else _key_of(self.version_table)

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic ``Config`` for these migrations, working on ``connection`` when given."""
        cfg = Config()
        # ConfigParser interpolates '%': double it in whatever goes into the options.
        cfg.set_main_option("script_location", str(self.script_location).replace("%", "%%"))
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    @cached_property
    def scripts(self) -> ScriptDirectory:
        """The revisions (read once per process: ``ensure_schema`` runs in every worker)."""
        return ScriptDirectory.from_config(self.config())

    def refresh(self) -> None:
        """Read the revisions again next time (after writing a new one)."""
        self.__dict__.pop("scripts", None)

    @property
    def head(self) -> str | None:
        return self.scripts.get_current_head()

    def database_url(self, piece: str) -> str:
        if self.url_for is not None:
            return self.url_for(piece)
        return VigieSettings().database_url_for(piece)
