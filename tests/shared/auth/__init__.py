"""Tests of vigie.auth: keys, token verification, the FastAPI dependency, the CLI."""
