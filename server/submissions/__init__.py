"""Submissions: streamed archive uploads (or registry references), listing, logs and cancel."""
