"""The leaderboard rows that come from the test set itself, before any run is scored.

The five experts' agreement with the consensus and the LIBRA density comparators depend on the label
files alone (issue 10 item 2, issue 14 item 2), so the server computes them from
``Settings.benchmark_dir`` with the scorer's own function
(:func:`server.scoring.report.references_of_test_set`, the numbers every report carries) and keeps
them per test-set digest: the sha256 of the label bytes that were parsed (private file, then the
public file when there is one). A request only stats the two files; they are read and hashed again
when their size or modification time changes, and recomputed only when the digest is new.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.benchmark.dataset import Benchmark, BenchmarkError
from server.core.settings import Settings
from server.core.state import AppState
from server.scoring.bootstrap import resample_counts
from server.scoring.experts import consensus_replicates
from server.scoring.inputs import FloatArray
from server.scoring.labels import LabelFileError, LabelLayout, parse_labels
from server.scoring.report import ScoringInputError, references_of_test_set
from server.scoring.results import Report

log = logging.getLogger("csawm.leaderboard")

#: Report key -> the label the pages and the API give a density row.
DENSITY_NAMES: dict[str, str] = {
    "percent_density": "LIBRA percent density",
    "dense_area": "LIBRA dense area",
    "breast_area": "LIBRA breast area",
}


@dataclass(frozen=True)
class BoardReferences:
    """Expert and density rows of one test set, as the report sections they are (``experts``:
    ``{Expert_k: {"kendall_tau_b", "amae", "per_expert"}}``; ``clinical``: ``{"population", "n",
    <endpoint>: {"references": {variable: {"n", "n_positive", "auc", "odds_ratios"}}}}``)."""

    labels_sha256: str  # of the label bytes the rows were computed from (private, then public)
    scorer_version: str
    experts: dict[str, Any]
    clinical: dict[str, Any]
    # each expert's tau-b against the consensus on the runs' own resamples (same rows, seed and
    # count): the board's expert bands (issue 21 item 0)
    expert_replicates: dict[str, FloatArray] = field(default_factory=dict)

    def report(self) -> Report:
        """These rows read as the report sections they are (`server.scoring.results.Report`)."""
        shown = Report.read(
            {"scorer_version": self.scorer_version, "experts": self.experts, "clinical": self.clinical}
        )
        assert shown is not None
        return shown


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _digest(private_bytes: bytes, public_bytes: bytes | None) -> str:
    h = hashlib.sha256(private_bytes)
    if public_bytes is not None:
        h.update(b"\0public\0")
        h.update(public_bytes)
    return h.hexdigest()


def _from_bytes(
    bench: Benchmark, private_bytes: bytes, public_bytes: bytes | None, *, resamples: int, seed: int
) -> BoardReferences:
    try:
        private = parse_labels(private_bytes, path=bench.private_labels, layout=LabelLayout.PRIVATE)
        public = (
            parse_labels(public_bytes, path=bench.public_labels, layout=LabelLayout.PUBLIC)
            if public_bytes is not None
            else None
        )
        data = references_of_test_set(private, public_labels=public, resamples=resamples, seed=seed)
        bands = (
            consensus_replicates(private, resample_counts(len(private), resamples, seed)) if resamples else {}
        )
    except (LabelFileError, ScoringInputError) as exc:
        raise BenchmarkError(str(exc)) from exc
    return BoardReferences(
        labels_sha256=_digest(private_bytes, public_bytes),
        scorer_version=str(data["scorer_version"]),
        experts=data["experts"],
        clinical=data["clinical"],
        expert_replicates=bands,
    )


class ReferenceCache:
    """Per-app holder of :class:`BoardReferences`, keyed by test-set digest (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stat: tuple[Any, ...] | None = None
        self._current: BoardReferences | None = None
        self._by_digest: dict[tuple[str, int, int], BoardReferences] = {}
        self._failed: tuple[Any, ...] | None = None

    def get(self, settings: Settings) -> BoardReferences | None:
        """The rows of the configured test set, or None without one (or when it cannot be read,
        which is logged once per change of the files)."""
        if settings.benchmark_dir is None:
            return None
        try:
            bench = Benchmark.open(settings.benchmark_dir)
            stat = _stat_key(bench, settings)
        except (BenchmarkError, OSError) as exc:
            self._log_once(("open", str(exc)), exc)
            return None
        with self._lock:
            if stat == self._stat and self._current is not None:
                return self._current
            if stat == self._failed:
                return None
            try:
                private_bytes = _read(bench.private_labels)
                public_bytes = _read(bench.public_labels) if bench.public_labels is not None else None
                resamples, seed = settings.bootstrap_resamples, settings.bootstrap_seed
                key = (_digest(private_bytes, public_bytes), resamples, seed)
                found = self._by_digest.get(key)
                if found is None:
                    found = _from_bytes(bench, private_bytes, public_bytes, resamples=resamples, seed=seed)
                    self._by_digest[key] = found
            except BenchmarkError as exc:
                self._failed = stat
                log.warning("leaderboard: test-set rows unavailable: %s", exc)
                return None
            self._stat, self._current, self._failed = stat, found, None
            return found

    def _log_once(self, key: tuple[Any, ...], exc: Exception) -> None:
        with self._lock:
            if self._failed != key:
                self._failed = key
                log.warning("leaderboard: test-set rows unavailable: %s", exc)


def _stat_key(bench: Benchmark, settings: Settings) -> tuple[Any, ...]:
    parts: list[Any] = [settings.bootstrap_resamples, settings.bootstrap_seed]
    for path in (bench.private_labels, bench.public_labels):
        if path is None:
            parts.append(None)
            continue
        info = path.stat()
        parts.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(parts)


def board_references(state: AppState) -> BoardReferences | None:
    """The app's :class:`ReferenceCache` (``AppState.references``) asked once."""
    return state.parts.get(ReferenceCache).get(state.settings)
