"""The registry of OAuth2 clients allowed to get tokens from ``auth``.

One table, ``auth_clients``, in ``settings.database_url_for("auth")``, made and changed by the
migrations of :mod:`vigie_services.auth.migrations` (:meth:`ClientStore.create_schema`).
Secrets are random (``secrets.token_urlsafe(32)``), shown once at creation and stored only as a
salted scrypt hash whose parameters are stored with it (so they can be raised later without
breaking old rows).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from vigie.auth.keys import parse_scopes
from vigie.io.db import upgrade
from vigie.settings import VigieSettings
from vigie_services.auth.migrations import MIGRATIONS

SERVICE = "auth"
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# scrypt cost: ~16 MiB and a few tens of ms per check; token requests are rare (one per client
# per token lifetime), so we can afford to make offline guessing expensive.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32

metadata = MetaData()
auth_clients = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", String(255), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)


class ClientError(ValueError):
    """A registry operation that cannot be done (bad name, duplicate, unknown client)."""


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    disabled: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash base64url)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored`` (from :func:`hash_secret`); constant-time compare."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest_b64)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the client is unknown, so an unknown client costs as much as a wrong
# secret and response times do not reveal which client ids exist.
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(32))


class ClientStore:
    """CRUD over ``auth_clients``; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        # No I/O here (SQLAlchemy connects lazily): app factories stay side-effect free.
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    @property
    def url_for_log(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @classmethod
    def from_settings(cls, settings: VigieSettings) -> ClientStore:
        return cls(settings.database_url_for(SERVICE))

    def create_schema(self) -> None:
        """Upgrade the registry's database to the latest revision (creating the SQLite file and
        its directory); a no-op when it is there. A registry made before migrations is adopted,
        its clients kept; pieces starting together take turns (:func:`vigie.io.db.upgrade`)."""
        upgrade(self.url, MIGRATIONS)

    def ping(self) -> None:
        """Raise unless the table can be read (used by ``/readyz``)."""
        with self.engine.connect() as conn:
            conn.execute(select(auth_clients.c.client_id).limit(1)).all()

    def close(self) -> None:
        self.engine.dispose()

    def add_client(self, client_id: str, scopes: str | Iterable[str]) -> str:
        """Register ``client_id`` with its allowed ``scopes``; return its secret, shown once."""
        if not CLIENT_ID.match(client_id):
            raise ClientError(
                f"invalid client id {client_id!r}: 1-64 of letters, digits, '.', '_', '-'"
            )
        try:
            allowed = parse_scopes(scopes)
        except ValueError as exc:
            raise ClientError(str(exc)) from exc
        if not allowed:
            raise ClientError("a client needs at least one scope")
        secret = secrets.token_urlsafe(32)
        row = {
            "client_id": client_id,
            "secret_hash": hash_secret(secret),
            "scopes": " ".join(allowed),
            "created_at": datetime.now(UTC),
            "disabled": False,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(auth_clients).values(**row))
        except IntegrityError as exc:
            raise ClientError(f"client {client_id!r} already exists") from exc
        return secret

    def verify_client(self, client_id: str, secret: str) -> frozenset[str] | None:
        """The client's allowed scopes when ``secret`` is right and it is enabled, else None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(auth_clients.c.secret_hash, auth_clients.c.scopes, auth_clients.c.disabled)
                .where(auth_clients.c.client_id == client_id)
            ).first()  # fmt: skip
        if row is None:
            check_secret(secret, _DUMMY_HASH)
            return None
        if not check_secret(secret, row.secret_hash) or row.disabled:
            return None
        return frozenset(row.scopes.split())

    def list_clients(self) -> list[ClientInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(auth_clients).order_by(auth_clients.c.client_id)).all()
        return [
            ClientInfo(
                client_id=r.client_id,
                scopes=tuple(r.scopes.split()),
                created_at=r.created_at,
                disabled=bool(r.disabled),
            )
            for r in rows
        ]

    def remove_client(self, client_id: str) -> bool:
        """Delete ``client_id``; False when there was no such client."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(auth_clients).where(auth_clients.c.client_id == client_id))
        return bool(result.rowcount)
