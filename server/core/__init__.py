"""Cross-cutting server pieces: settings, database, errors, security, request dependencies."""
