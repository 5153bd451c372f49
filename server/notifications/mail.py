"""Email notices over SMTP (``CSAWM_SMTP_*``): plain text built from the payload, one message per member.

Names are the submitter's and the team's own text: CR, LF and other control characters are replaced
by spaces before they reach a header (`email.message.EmailMessage` would refuse them, and an
injected ``Bcc:`` line must never be possible), and the body holds them as plain text only.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from server.core.settings import Settings
from server.core.text import visible
from server.notifications.outcome import Outcome

SUBJECT_MAX = 200

_WHAT = {
    "run.finished": "finished",
    "run.failed": "failed",
    "run.cancelled": "was cancelled",
    "run.reviewed": "was reviewed",
}


def one_line(value: object, limit: int = SUBJECT_MAX) -> str:
    """`value` as header-safe text: control characters (CR and LF included) become spaces, and
    invisible or direction-changing characters visible escapes (`server.core.text.visible`)."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(value))
    return " ".join(visible(text).split())[:limit]


def _mail(
    sender: str, to: str, subject: str, delivery_id: object, event: object, lines: list[str]
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = one_line(subject)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg["X-CSAWM-Delivery"] = one_line(delivery_id)
    msg["X-CSAWM-Event"] = one_line(event)
    msg.set_content("\n".join(lines) + "\n")
    return msg


def message(body: dict[str, Any], *, sender: str, to: str) -> EmailMessage:
    name, team = one_line(body.get("name") or ""), one_line(body.get("team") or "")
    what = _WHAT.get(str(body["event"]), str(body["event"]))
    if body.get("submission_id") is None:  # a notice to the maintainers about a team (server/operations)
        status = one_line(body.get("status"))
        lines = [
            f"Team {team}: {status}.",
            "",
            f"phase:        {one_line(body.get('phase'))}",
            f"at:           {one_line(body.get('occurred_at'))}",
            "",
            f"Delivery {body['delivery_id']}. You get this mail as a maintainer of the server.",
        ]
        subject = f"[CSAW-M] team {team}: {status}"
        return _mail(sender, to, subject, body["delivery_id"], body["event"], lines)
    lines = [
        f"Run {body['submission_id']} ({name}) of team {team} {what}.",
        "",
        f"status:       {one_line(body.get('status'))}",
        f"error code:   {one_line(body.get('error_code') or '-')}",
        f"review state: {one_line(body.get('review_state'))}",
        f"phase:        {one_line(body.get('phase'))}",
        f"at:           {one_line(body.get('occurred_at'))}",
        "",
        f"Details (sign in): {body.get('url')}",
        "",
        f"Delivery {body['delivery_id']}. You get this mail as a member of team {team}.",
    ]
    subject = f"[CSAW-M] {team} / {name}: run {body['submission_id']} {what}"
    return _mail(sender, to, subject, body["delivery_id"], body["event"], lines)


def account_message(payload: dict[str, Any], delivery_id: str, *, sender: str, to: str) -> EmailMessage:
    """An account mail (registration): the subject and the plain text written by the server."""
    subject = f"[CSAW-M] {payload.get('subject') or ''}"
    return _mail(sender, to, subject, delivery_id, "account.mail", [str(payload.get("text") or "")])


def send(settings: Settings, msg: EmailMessage) -> Outcome:
    """One SMTP transaction; a 5xx reply is permanent (the address or the message is refused)."""
    assert settings.mail.host is not None
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    timeout = settings.webhook_timeout.total_seconds()
    try:
        if settings.mail.tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.mail.host, settings.mail.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(settings.mail.host, settings.mail.port, timeout=timeout)
        with client:
            if settings.mail.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.mail.username is not None and settings.mail.password is not None:
                client.login(settings.mail.username, settings.mail.password.get_secret_value())
            refused = client.send_message(msg)
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        return Outcome(
            ok=False, duration_ms=elapsed(), status_code=exc.smtp_code, error=_reply(exc), permanent=permanent
        )
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        return Outcome(
            ok=False,
            duration_ms=elapsed(),
            status_code=codes[0] if codes else None,
            error="the SMTP server refused the recipient",
            permanent=all(500 <= c < 600 for c in codes),
        )
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(ok=False, duration_ms=elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
    if refused:
        return Outcome(ok=False, duration_ms=elapsed(), error="the SMTP server refused the recipient")
    return Outcome(ok=True, duration_ms=elapsed(), status_code=250)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    )
    return f"SMTP {exc.smtp_code}: {one_line(text, 300)}"
