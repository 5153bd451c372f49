"""The data-use agreement (``CSAWM_DUA_FILE``): its document, its acceptances, its API."""
