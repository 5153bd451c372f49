"""The run queue: the guarded state machine, leases, and the worker loop."""
