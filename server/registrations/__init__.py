"""Self-registration with approval (issue 22 item 1; docs/api.md#registration, docs/maintaining.md)."""
