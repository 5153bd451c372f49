"""Notifications (issue 15 item 6): signed webhooks and email, sent from a durable outbox.

`outbox.enqueue` writes the notices of a state change inside that change's transaction; the
`dispatcher` claims due rows, sends them (`webhook`, `mail`) and records every attempt. Payloads
carry no score, metric, log or error detail (`events`), so a sealed or Ladder phase cannot leak
through a notification. See docs/notifications.md.
"""
