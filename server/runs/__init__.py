"""What a run is and how it ends, independent of who executes it.

* `transitions` — the one guarded function through which every status changes (the state machine);
* `policy` — the table that decides, for each way a run can stop (stage × fault kind × error code),
  whether it is retried, who pays, and what the submitter and the maintainers are told;
* `leases` — taking a run (or taking it over after its lease expired), renewing, its container;
* `lifecycle` — creation, cancel requests, a stage's progress, the review state (by
  `transitions.REVIEW_ALLOWED`) and the duplicates rule; nothing outside `server.runs` builds a
  timeline event or writes a lease;
* `disclosure` — the submitter's and the maintainer's view of a run's messages and logs.

The worker (`server.worker`) executes stages and asks `policy.decide` at every ending; the API
(`server.submissions`) cancels through the same table. Nothing else decides refunds.
"""
