"""The texts of the registration mails. None holds an API token: a welcome mail holds a one-time
link to the page that shows the first token once."""

from __future__ import annotations

from datetime import datetime

from server.models import Registration


def _team(reg: Registration) -> str:
    return f"create team {reg.team_name!r}" if reg.team_action == "create" else f"join team {reg.team_name!r}"


def verify(reg: Registration, link: str, expires_at: datetime) -> tuple[str, str]:
    return "Confirm your email address", (
        "Someone (we hope you) asked to register for the CSAW-M leaderboard with this address, "
        f"to {_team(reg)}.\n\n"
        f"Confirm the address by opening this link (it works once, until {expires_at:%Y-%m-%d %H:%M} UTC):\n"
        f"{link}\n\n"
        "A maintainer then reviews the registration. If this was not you, ignore this mail."
    )


def known_account() -> tuple[str, str]:
    return "You already have an account", (
        "Someone asked to register for the CSAW-M leaderboard with this address, but an account with it "
        "already exists. Nothing was changed. If you lost your API token, ask a maintainer for a new one.\n\n"
        "If this was not you, ignore this mail."
    )


def already_pending() -> tuple[str, str]:
    return "Your registration is already pending", (
        "Someone asked to register for the CSAW-M leaderboard with this address again, while an earlier "
        "registration with it is still pending. Nothing was changed: the earlier one stands.\n\n"
        "If this was not you, ignore this mail."
    )


def welcome(reg: Registration, link: str, expires_at: datetime) -> tuple[str, str]:
    return "Your registration was approved", (
        f"Welcome: your registration was approved and you are a member of team {reg.team_name!r}.\n\n"
        f"Open this link to get your first API token (it is shown once; the link works once, until "
        f"{expires_at:%Y-%m-%d %H:%M} UTC):\n{link}\n\n"
        "No token is ever sent by mail. Before your first submission, read and accept the data-use "
        "agreement (csawm agreement) where the server has one."
    )


def rejected(reg: Registration) -> tuple[str, str]:
    return "Your registration was not approved", (
        f"Your registration to {_team(reg)} was not approved.\n\nReason: {reg.reason or '-'}"
    )
