"""Maintainer review of scored submissions and the audit log."""
