"""The `csawm` console script: server, worker, admin, researcher and offline tools."""
