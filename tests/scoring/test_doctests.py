"""The worked examples in the scoring docstrings are executed, so they cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "server.scoring.metrics",
    "server.scoring.ranks",
    "server.scoring.clinical",
    "server.scoring.experts",
    "server.scoring.registry",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
