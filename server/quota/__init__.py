"""The per-team quota ledger: rolling windows, a total per phase, a cap on active runs."""
