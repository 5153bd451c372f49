"""What a request or a file got wrong, in the project's words (issue 23 item 8).

The framework's validation messages ("Extra inputs are not permitted", "Input should be a valid URL,
relative URL without a base", "Field required") name its own internals, not what the reader should
change. Every place that reports a validation error to a person — the API's 422 and 400 answers
(`server.core.error_handlers`, the submission routes) and the client's method-card check — words it
with `problems`, from one table, `WORDS`, keyed by the framework's error type. A type not in the
table reads "is not valid", never the framework's text. Only the messages of the project's own
validators (type ``value_error``, ``assertion_error``) are passed on, less the framework's prefix.

Kept free of the web framework: the researcher's client imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The framework's error type -> what the reader is told; ``{name}`` fields come from the error's
#: context (``ctx``): a limit, the accepted values.
WORDS: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field this server accepts (check its spelling)",
    "url_parsing": "is not a full web address (write it as https://example.org/...)",
    "url_scheme": "must be a web address starting with http:// or https://",
    "url_too_long": "is too long for a web address",
    "url_type": "must be a web address",
    "string_type": "must be text",
    "string_too_short": "is too short (at least {min_length} characters)",
    "string_too_long": "is too long (at most {max_length} characters)",
    "string_pattern_mismatch": "holds characters that are not allowed here",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "json_invalid": "is not valid JSON",
    "json_type": "must be JSON",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a list",
    "too_long": "is too long (at most {max_length})",
    "too_short": "is too short (at least {min_length})",
    "datetime_parsing": "must be a time in ISO 8601 with its zone (2027-03-01T00:00Z)",
    "datetime_type": "must be a time in ISO 8601 with its zone (2027-03-01T00:00Z)",
    "timezone_aware": "must be a time with its zone (add Z or +HH:MM)",
    "string_unicode": "must be UTF-8 text",
}
#: Error types whose message is the project's own (a validator of ours), shown less this prefix.
OWN_MESSAGES = {"value_error": "Value error, ", "assertion_error": "Assertion failed, "}
UNKNOWN = "is not valid"
#: Where a parameter came from: not part of the name the reader knows it by.
SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def where(loc: Iterable[Any], default: str) -> str:
    """The name of what is wrong (``method_card.code_url``), without the request part it came in."""
    parts = [str(part) for part in loc if part not in SOURCES]
    return ".".join(parts) or default


def words(error: Mapping[str, Any]) -> str:
    """One validation error's meaning in the project's words (module docstring)."""
    kind = str(error.get("type", ""))
    if kind in OWN_MESSAGES:
        return str(error.get("msg", "")).removeprefix(OWN_MESSAGES[kind]) or UNKNOWN
    if (template := WORDS.get(kind)) is None:
        return UNKNOWN
    context = {key: _shown(value) for key, value in (error.get("ctx") or {}).items()}
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template.split(" (")[0].split(" {")[0]


def _shown(value: Any) -> str:
    text = str(value)
    return text.replace("'", "") if isinstance(value, str) else text


def problems(errors: Iterable[Mapping[str, Any]], default: str = "request") -> str:
    """Every error as ``NAME: WORDS``, joined by "; " (`default`: the name of the whole input)."""
    return "; ".join(f"{where(e.get('loc', ()), default)}: {words(e)}" for e in errors)
