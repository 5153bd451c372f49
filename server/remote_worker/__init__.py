"""`csawm worker --server URL`: a worker that reaches the server over its worker API only (issue 25)."""
