"""Tests of the auth service: token issuance, JWKS, client registry, CLI."""
