"""What a viewer may see of a run: `server.disclosure.disclose.disclose`, the one function the API,
the pages, the exports and the notices ask at read time (and `board_figures_note` for the board).

Below the runs, the notifications and every surface that shows a run (the layers of docs/design.md).
"""
