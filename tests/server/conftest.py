"""Fixtures shared with the end-to-end suites."""

from tests.e2e.test_shared_inbox import pg_database  # noqa: F401 - a fresh PostgreSQL database
