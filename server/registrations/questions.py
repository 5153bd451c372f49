"""The operator's registration questions (``CSAWM_REGISTRATION_QUESTIONS``, a YAML file).

The file is a list of ``{id, text, required}`` (``required`` defaults to false). It is read when a
registration needs it, so an edit applies without a restart; a file that cannot be read or parsed
is the operator's error and answers 500, never a silently empty form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from server.core.errors import BadRequest, CsawmError

ANSWER_MAX = 4000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    required: bool


class QuestionsFileError(CsawmError):
    """The operator's file is broken: a 500 that names it, and nothing is registered."""

    status_code = 500
    code = "registration_questions_invalid"


def load(path: Path | None) -> list[Question]:
    if path is None:
        return []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise QuestionsFileError(f"CSAWM_REGISTRATION_QUESTIONS {path}: {exc}") from exc
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise QuestionsFileError(f"CSAWM_REGISTRATION_QUESTIONS {path}: expected a list of questions")
    found: list[Question] = []
    for item in raw:
        if not (
            isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("text"), str)
        ):
            raise QuestionsFileError(
                f"CSAWM_REGISTRATION_QUESTIONS {path}: each question needs an id and a text"
            )
        if not _ID.fullmatch(item["id"]) or item["id"] in {q.id for q in found}:
            raise QuestionsFileError(
                f"CSAWM_REGISTRATION_QUESTIONS {path}: bad or repeated id {item['id']!r}"
            )
        found.append(Question(item["id"], item["text"], bool(item.get("required", False))))
    return found


def check_answers(questions: list[Question], answers: dict[str, str]) -> dict[str, str]:
    """The answers as stored (stripped), or a 400 naming the unknown, missing or too long ones."""
    known = {q.id for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise BadRequest(f"unknown question ids: {', '.join(unknown)}", unknown=unknown)
    long = sorted(k for k, v in answers.items() if len(v) > ANSWER_MAX)
    if long:
        raise BadRequest(f"answers longer than {ANSWER_MAX} characters: {', '.join(long)}")
    kept = {k: v.strip() for k, v in answers.items()}
    missing = [q.id for q in questions if q.required and not kept.get(q.id)]
    if missing:
        raise BadRequest(f"required questions not answered: {', '.join(missing)}", missing=missing)
    return kept
