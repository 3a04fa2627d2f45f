"""OAuth2 token-endpoint errors (RFC 6749 section 5.2), in the Vigie error envelope.

``code`` is the RFC's ``error`` value, so OAuth2 clients can still switch on it;
:func:`token_error_responses` declares exactly those codes in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from vigie.contract.errors import BadRequest, ErrorInfo, Unauthorized, error_responses


class InvalidRequest(BadRequest):
    """A required parameter is missing, repeated or malformed."""

    code = "invalid_request"


class InvalidClient(Unauthorized):
    """Unknown client, wrong secret, or no client authentication at all.

    The challenge names Basic, the scheme clients authenticate with here (RFC 6749 5.2), not the
    Bearer challenge of :class:`~vigie.contract.errors.Unauthorized`.
    """

    code = "invalid_client"

    def __init__(self, message: str) -> None:
        super().__init__(message, error="invalid_client")
        self.headers = {"WWW-Authenticate": 'Basic realm="vigie", charset="UTF-8"'}


class UnsupportedGrantType(BadRequest):
    code = "unsupported_grant_type"


class InvalidScope(BadRequest):
    code = "invalid_scope"


# -- what the token endpoint's errors look like in OpenAPI ----------------------------------


class TokenRequestErrorInfo(ErrorInfo):
    code: Literal["invalid_request", "unsupported_grant_type", "invalid_scope"] = Field(
        description="RFC 6749 section 5.2 error code"
    )


class TokenRequestError(BaseModel):
    """A 400 of ``POST /token``: the request, its grant type or its scope is refused."""

    error: TokenRequestErrorInfo


class InvalidClientErrorInfo(ErrorInfo):
    code: Literal["invalid_client"] = Field(description="RFC 6749 section 5.2 error code")


class InvalidClientError(BaseModel):
    """A 401 of ``POST /token``: client authentication failed (``WWW-Authenticate: Basic``)."""

    error: InvalidClientErrorInfo


def token_error_responses() -> dict[int | str, dict[str, Any]]:
    """The error answers of ``POST /token``: 400 and 401 with their RFC 6749 codes, 503."""
    return {
        400: {"model": TokenRequestError, "description": "Malformed request, unsupported "
              "grant type or scope not allowed (RFC 6749 5.2)"},
        401: {"model": InvalidClientError, "description": "Client authentication failed "
              "(unknown client, wrong secret, none given)"},
        **error_responses(503),
    }  # fmt: skip
