"""The worker API (issue 25): remote workers lease, run and report runs over HTTPS only.

Every state change goes through the run lifecycle (`server.runs`), and the server scores: the
labels never leave it. See docs/remote-workers.md.
"""
