"""Helpers for the server tests (imported as `srvtest`: tests/server is on sys.path via its conftest)."""
