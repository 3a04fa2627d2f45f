"""OAuth2 token-endpoint errors (RFC 6749 section 5.2), in the Vigie error envelope.

``code`` is the RFC's ``error`` value, so OAuth2 clients can still switch on it.
"""

from __future__ import annotations

from vigie.contract.errors import BadRequest, Unauthorized


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
