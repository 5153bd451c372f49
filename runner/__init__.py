"""Execution backends for untrusted model containers.

`runner` knows nothing of the database or of scoring: it takes a frozen `RunSpec`, starts the
model in a sandbox, and hands back a `RunResult` with the raw bytes of `predictions.csv` (read
safely). The worker validates those bytes with `server.scoring`.
"""
