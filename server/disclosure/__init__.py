"""What a viewer may see of a run: its figures, timestamps and host (`run_view`).

Below the runs, the notifications and every surface that shows a run, so each of them asks the same
function at read time (the layers of docs/design.md).
"""
