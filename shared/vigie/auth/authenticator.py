"""FastAPI glue for token verification: dependencies that authenticate and authorize requests.

``Depends(auth.requires("predict:turbine-nox"))`` returns the
:class:`~vigie.auth.verify.Principal`, 401 without a valid token, 403 without the scope
(:class:`Authenticator`); the token itself is checked by :class:`~vigie.auth.verify.TokenVerifier`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vigie.auth.keyset import KeySet
from vigie.auth.verify import Principal, TokenVerifier
from vigie.contract.errors import Forbidden, Unauthorized
from vigie.settings import VigieSettings

# Declares the bearer scheme in OpenAPI (the /docs "Authorize" button); we read the header
# ourselves for precise errors, so it never raises.
_bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer", description="JWT from auth")


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; Unauthorized when absent or not Bearer."""
    header = request.headers.get("authorization")
    if not header or not header.strip():
        raise Unauthorized("missing bearer token", error="invalid_request")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("authorization scheme must be Bearer", error="invalid_request")
    token = value.strip()
    if not token:
        raise Unauthorized("missing bearer token", error="invalid_request")
    return token


class Authenticator:
    """Builds FastAPI dependencies that authenticate and authorize requests.

    Usage::

        auth = Authenticator.from_settings(settings)

        @app.post("/v1/predict")
        async def predict(principal: Principal = Depends(auth.requires("predict:turbine-nox"))):
            ...

    The principal is also left on ``request.state.principal`` (for logs and audit).
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    @classmethod
    def from_settings(cls, settings: VigieSettings) -> Authenticator:
        """From ``settings.jwks_url`` when set, else the JWKS file; ConfigError when unusable."""
        if settings.jwks_url:
            keyset = KeySet.from_url(settings.jwks_url)
        else:
            keyset = KeySet.from_file(settings.resolved_jwks_path)
        return cls(
            TokenVerifier(
                keyset,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway_s=settings.jwt_leeway_s,
            )
        )

    async def authenticate(self, request: Request) -> Principal:
        """The principal of the request's bearer token, whatever its scopes."""
        principal = await self.verifier.averify(bearer_token(request))
        request.state.principal = principal
        return principal

    async def authorize(self, request: Request, scope: str) -> Principal:
        """The principal, if its token is valid (401) and grants ``scope`` (403). For hot routes
        that skip dependency injection; :meth:`requires` wraps it for the others."""
        principal = await self.authenticate(request)
        if not principal.has(scope):
            raise Forbidden(f"token lacks scope {scope}", scope=scope)
        return principal

    def requires(self, scope: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency returning the principal; 401 without a valid token, 403 without scope."""

        async def dependency(
            request: Request,
            _credentials: HTTPAuthorizationCredentials | None = Security(_bearer_scheme),
        ) -> Principal:
            return await self.authorize(request, scope)

        dependency.__name__ = f"requires_{scope.replace(':', '_').replace('-', '_')}"
        return dependency
