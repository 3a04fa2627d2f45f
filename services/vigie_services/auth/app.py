"""The ``auth`` service: OAuth2 client-credentials token issuer and JWKS publisher.

Routes (design.md sections 1 and 4):

- ``POST /token``: RFC 6749 section 4.4 (client credentials), client authenticated by HTTP Basic
  or by ``client_id``/``client_secret`` form fields; errors in the Vigie envelope with the RFC's
  error codes (``invalid_client``, ``unsupported_grant_type``, ``invalid_scope``...).
- ``GET /.well-known/jwks.json``: the public keys verifiers trust.
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

Every answer has its model below (or the error envelope), published in ``/openapi.json``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vigie.auth.keys import issue_token, parse_scopes
from vigie.contract.errors import (
    ConfigError,
    ServiceUnavailable,
    error_responses,
    install_error_handlers,
)
from vigie.obs.logs import install_request_context
from vigie.obs.metrics import install_metrics
from vigie.settings import VigieSettings
from vigie_services.auth.clients import CLIENT_ID, ClientStore
from vigie_services.auth.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    UnsupportedGrantType,
    token_error_responses,
)
from vigie_services.auth.signing import KeyDirectory

log = logging.getLogger(__name__)

SERVICE = "auth"
GRANT_TYPE = "client_credentials"
JWKS_MAX_AGE_S = 300
# RFC 6749 5.1: token responses must not be cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1 (sent with ``Cache-Control: no-store``)."""

    access_token: str = Field(description="an RS256 JWT (design.md section 4)")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int = Field(description="seconds until the token expires")
    scope: str = Field(description="the granted scopes, space-separated")


class PublicJwk(BaseModel):
    """One RSA public key (RFC 7517): only public members are ever published."""

    kty: Literal["RSA"]
    kid: str
    use: Literal["sig"] | None = None
    alg: Literal["RS256"] | None = None
    n: str = Field(description="modulus, base64url")
    e: str = Field(description="exponent, base64url")


class Jwks(BaseModel):
    keys: list[PublicJwk] = Field(min_length=1)


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ok"]
    kid: str = Field(description="id of the key tokens are signed with now")


def _require_grant_type(schema: dict[str, Any]) -> None:
    schema["required"] = ["grant_type"]
    for prop in schema["properties"].values():
        prop.pop("default", None)  # null: absent, which the types cannot say


# Read by TokenForm.read rather than by FastAPI's Form parameters, so that every malformed token
# request is the RFC's invalid_request: FastAPI answers an unreadable body with its own 400 and a
# file where a field belongs with a 422.
class TokenForm(BaseModel):
    """The form of ``POST /token`` (``application/x-www-form-urlencoded``, RFC 6749 4.4.2);
    each parameter at most once; the client authenticates with HTTP Basic or with client_id and
    client_secret, not both."""

    # The schema says what a valid request holds; read() takes any text, so that a missing or
    # other grant type gets its RFC 6749 error (invalid_request, unsupported_grant_type).
    model_config = ConfigDict(json_schema_extra=_require_grant_type)
    grant_type: str | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra={"enum": [GRANT_TYPE]}
    )
    client_id: str | SkipJsonSchema[None] = Field(
        default=None, description="or HTTP Basic authentication"
    )
    client_secret: str | SkipJsonSchema[None] = None
    scope: str | SkipJsonSchema[None] = Field(
        default=None, description="space-separated; default: all the client's scopes"
    )

    @classmethod
    async def read(cls, request: Request) -> TokenForm:
        try:
            form = await request.form()
        except HTTPException as exc:  # Starlette's 400 for a multipart body it cannot parse
            if exc.status_code != 400:
                raise
            raise InvalidRequest(f"unreadable form body: {exc.detail}") from None
        fields: dict[str, str] = {}
        for name in cls.model_fields:
            values = form.getlist(name)
            if len(values) > 1:  # RFC 6749 3.2: parameters must not be included more than once
                raise InvalidRequest(f"repeated parameter: {name}")
            if values:
                if not isinstance(values[0], str):
                    raise InvalidRequest(f"{name} must be a form field, not a file")
                fields[name] = values[0]
        return cls(**fields)

    @classmethod
    def openapi_body(cls) -> dict[str, Any]:
        """The ``requestBody`` to declare, since no parameter of the route does."""
        form = {"schema": cls.model_json_schema()}
        return {"required": True, "content": {"application/x-www-form-urlencoded": form}}


@dataclass
class AuthService:
    """What the routes need; built by :func:`create_app`, opened by its lifespan."""

    settings: VigieSettings
    keys: KeyDirectory
    clients: ClientStore

    @classmethod
    def from_settings(cls, settings: VigieSettings) -> AuthService:
        keys = KeyDirectory(settings.resolved_keys_dir)
        return cls(settings, keys, ClientStore.from_settings(settings))

    def __post_init__(self) -> None:
        self._schema_ready = False

    def ensure_schema(self) -> None:
        """Create the client table once; retried on later calls if the database was down."""
        if not self._schema_ready:
            self.clients.create_schema()
            self._schema_ready = True

    def start(self) -> None:
        # Stay up whatever fails here so /readyz can say why; /token answers 503 meanwhile.
        try:
            self.ensure_schema()
        except Exception:  # database down or misconfigured: reported by /readyz
            log.exception("auth cannot open its client store %s", self.clients.url_for_log)
        try:
            kid = self.keys.check()
            log.info("auth ready: signing with kid %s from %s", kid, self.keys.keys_dir)
        except ConfigError as exc:
            log.error("auth cannot sign tokens: %s", exc)

    def verify_client(self, client_id: str, secret: str) -> frozenset[str] | None:
        if not CLIENT_ID.fullmatch(client_id):
            # No client can have this id (`vigie clients add` checks the same pattern); asking the
            # database anyway could fail on it (PostgreSQL refuses NUL in text): invalid_client.
            return None
        try:
            self.ensure_schema()
            return self.clients.verify_client(client_id, secret)
        except SQLAlchemyError as exc:
            log.error("client store unavailable: %s", exc)
            raise ServiceUnavailable("client store unavailable") from None

    def close(self) -> None:
        self.clients.close()


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic`` (RFC 6749 2.3.1), or None if absent."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("client authentication must use HTTP Basic or form fields")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 2.3.1: id and secret are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def _client_credentials(
    request: Request, client_id: str | None, client_secret: str | None
) -> tuple[str, str]:
    basic = _basic_credentials(request)
    if basic is not None:
        if client_secret is not None:
            raise InvalidRequest("use one client authentication method, not Basic and form both")
        if client_id is not None and client_id != basic[0]:
            raise InvalidRequest("client_id differs from the Basic credentials")
        return basic
    if not client_id or client_secret is None:
        raise InvalidClient("client authentication required (HTTP Basic or client_id/secret)")
    return client_id, client_secret


def _granted_scopes(requested: str | None, allowed: frozenset[str]) -> tuple[str, ...]:
    if requested is None or not requested.strip():
        return tuple(sorted(allowed))
    try:
        scopes = parse_scopes(requested)
    except ValueError as exc:
        raise InvalidScope(str(exc)) from None
    refused = [s for s in scopes if s not in allowed]
    if refused:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)}")
    return scopes


def create_app(settings: VigieSettings | None = None) -> FastAPI:
    """The auth service app; every resource is opened in the lifespan, none at import."""
    settings = settings or VigieSettings()
    service = AuthService.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="vigie auth",
        summary="OAuth2 client-credentials token issuer and JWKS for the Vigie services",
        lifespan=lifespan,
    )
    app.state.auth = service
    install_error_handlers(app)
    install_metrics(app, service=SERVICE)
    install_request_context(app, settings)

    @app.post("/token", summary="Issue an access token (OAuth2 client credentials)",
              responses=token_error_responses(),
              openapi_extra={"requestBody": TokenForm.openapi_body()})  # fmt: skip
    async def token(request: Request, response: Response) -> TokenResponse:
        body = await TokenForm.read(request)
        if not body.grant_type:
            raise InvalidRequest("grant_type is required (form-encoded body)")
        if body.grant_type != GRANT_TYPE:
            raise UnsupportedGrantType(f"grant_type must be {GRANT_TYPE}")
        cid, secret = _client_credentials(request, body.client_id, body.client_secret)
        # scrypt takes tens of ms: keep it off the event loop.
        allowed = await run_in_threadpool(service.verify_client, cid, secret)
        if allowed is None:
            raise InvalidClient("invalid client credentials")
        granted = _granted_scopes(body.scope, allowed)
        try:
            key = service.keys.signing_key()
        except ConfigError as exc:
            log.error("cannot sign: %s", exc)
            raise ServiceUnavailable("token signing key unavailable") from None
        ttl = settings.token_ttl_s
        access_token = issue_token(
            key,
            sub=cid,
            scopes=granted,
            ttl_s=ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        log.info("issued a token to %s for %s (kid %s)", cid, " ".join(granted), key.kid)
        response.headers.update(NO_STORE)
        return TokenResponse(access_token=access_token, expires_in=ttl, scope=" ".join(granted))

    @app.get("/.well-known/jwks.json", summary="Public keys that verify our tokens",
             response_model_exclude_none=True, responses=error_responses(503))  # fmt: skip
    async def jwks(response: Response) -> Jwks:
        try:
            doc = Jwks.model_validate(service.keys.public_jwks())
        except (ConfigError, ValidationError) as exc:
            log.error("cannot publish the JWKS: %s", exc)
            raise ServiceUnavailable("JWKS unavailable") from None
        response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_S}"
        return doc

    @app.get("/healthz", summary="Process alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", summary="Signing key and client store usable",
             responses=error_responses(503))  # fmt: skip
    async def readyz() -> Ready:
        problems: list[dict[str, Any]] = []
        try:
            kid = service.keys.check()
        except ConfigError as exc:
            kid = None
            problems.append({"check": "signing_key", "message": str(exc)})
        try:
            await run_in_threadpool(service.ensure_schema)
            await run_in_threadpool(service.clients.ping)
        except Exception as exc:  # any database failure means not ready
            log.warning("readyz: client store unusable: %s", exc)
            # The type only: driver messages can name hosts and users.
            problems.append({"check": "client_store", "message": type(exc).__name__})
        if problems:
            names = ", ".join(p["check"] for p in problems)
            raise ServiceUnavailable(f"not ready: {names}", details=problems)
        assert kid is not None  # no problem means the signing key checked out
        return Ready(status="ok", kid=kid)

    return app
