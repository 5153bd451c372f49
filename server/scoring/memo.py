"""A bounded memo for the report parts that depend on the test set alone, not on the submission.

The experts' rows and the LIBRA density comparators (with their bootstrap intervals) are the same
for every submission scored on the same label file with the same resamples, and together they cost
about as much as the rest of a report. A worker scores many runs against one test set (and a
re-score of every stored run does nothing else), so they are computed once per content digest and
copied out. The key is a sha256 of the exact arrays read (dtype, shape and bytes) plus the
resample count and seed, so a changed cell, row order or seed is a different entry; nothing here
depends on file names or paths. Values are deep-copied on the way in and out, so a caller that edits
its report never changes a cached one.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def content_digest(*arrays: np.ndarray | None) -> str:
    """sha256 hex over each array's dtype, shape and bytes (None hashes as a marker)."""
    h = hashlib.sha256()
    for array in arrays:
        if array is None:
            h.update(b"none;")
            continue
        data = np.ascontiguousarray(array)
        h.update(f"{data.dtype.str}{data.shape};".encode())
        h.update(data.tobytes())
    return h.hexdigest()


class Memo:
    """Least-recently-used results, at most `size` of them, safe to share between threads."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1; got {size}")
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The cached value of `key` (a deep copy), building and storing it when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return copy.deepcopy(self._items[key])  # type: ignore[return-value]
        value = build()
        with self._lock:
            self._items[key] = copy.deepcopy(value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: Test-set results of :mod:`server.scoring.report`; a few test sets x seeds per process.
TEST_SET_PARTS = Memo(16)
