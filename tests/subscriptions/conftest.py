"""Reuse the real-server fixture of the API tests; replica tests get a migrated PostgreSQL database."""

from tests.api.conftest import api  # noqa: F401
