"""Review flags (issue 15 item 4): signs that a run copies another team's work, or a score that moved
further than chance explains. Computed on request from the database and the prediction store, never
stored; a flag never blocks a run nor changes its state, and only maintainers see flags. Maintainers
decide.

Three kinds:

``correlated_predictions``
    Two succeeded runs of *different teams* whose hidden-run ``Final_score`` columns have Spearman's
    rho >= `RHO_THRESHOLD` (0.995) on the images both predicted (at least `MIN_COMMON_IMAGES`).
    rho is Pearson's correlation of the average ranks (tied scores share their mean rank)::

        rho(a, b) = sum_i (r_ai - mean(r_a)) (r_bi - mean(r_b)) / (||r_a - mean(r_a)|| ||r_b - mean(r_b)||)

    It is rank-based, so a monotone rescaling of another team's scores (x -> 10 x + 3, x -> exp x)
    still gives rho = 1. Baselines are the runs of their own team (``CSAW-M baselines``), so a team
    that resubmits a baseline's predictions is flagged like any other copy.
``same_image``
    One image digest submitted, in any status, by more than one team (a team resubmitting its own
    image is no flag).
``sudden_jump``
    A run whose tau-b exceeds its team's best earlier tau-b by more than `JUMP_FACTOR` (3) times the
    width ``hi - lo`` of *this run's* bootstrap 95% CI of tau-b (``masking.kendall_tau_b.ci95``).
    Earlier means submitted before it (``created_at``, then id); every succeeded run of the team
    counts, whatever its review state. The run's own CI is used because it is the chance variation
    of the very score being judged, on this test set, under this scorer; it is about 3.9 standard
    errors wide, so three widths are about twelve standard errors: far beyond noise, and beyond the
    steps by which a method usually improves.
``starter_method_card``
    A succeeded run whose method card still holds the text ``csawm init`` wrote
    (`server.submissions.starter_card`): valid, so accepted, but it says nothing about the model;
    the maintainer asks the team before approving it. ``csawm submit`` warned the team already.
``repeated_infra_errors``
    A team with at least `INFRA_ERROR_REPEATS` (2) runs that ended ``failed`` / ``infra_error``
    (issue 19). An outage hits every team alike; one team that keeps ending in our failures may have a
    model that breaks what runs it (the scorer, the engine), which is also how a refunded hidden run
    was once made free. The evidence says whether the team is held (`server.runs.holds`).

Efficiency: each stored predictions file is parsed and ranked once and kept in a `RankCache` keyed
by its sha256 (the store is content-addressed, so an entry never goes stale). Files that predict the
same image set form a group; their standardised rank vectors (centred, unit norm) are the rows of a
matrix Z, so every rho within the group is one product Z Z^T. Two groups with different image sets
are re-ranked on their common images and correlated there, again as one product.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.stats
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import Session
from threadpoolctl import ThreadpoolController

from server.clock import utcnow
from server.models import ReviewState, RunStatus, Submission, Team, TeamHold
from server.review.schemas import (
    CorrelationEvidence,
    FlaggedRunOut,
    FlagKind,
    FlagOut,
    FlagsOut,
    ImageEvidence,
    InfraErrorEvidence,
    JumpEvidence,
    StarterCardEvidence,
)
from server.runs import store
from server.scoring.predictions import PredictionsError, read_predictions
from server.scoring.results import Report
from server.submissions.starter_card import unedited_fields

RHO_THRESHOLD = 0.995
JUMP_FACTOR = 3.0
INFRA_ERROR_REPEATS = 2  # runs of one team ending infra_error that make a flag
MIN_COMMON_IMAGES = 20  # fewer common images and a rank correlation says little
RANK_CACHE_SIZE = 2048
NAME_SETS_KEPT = 64  # distinct image sets whose name tuples are shared between cache entries
BLOCK_ROWS = 1024  # rows of Z per matrix product: bounds memory at BLOCK_ROWS x files floats
ID_CHUNK = 500  # ids per IN (...) query (SQLite's parameter limit)


# -- ranked prediction files -----------------------------------------------------------------------


@dataclass(frozen=True)
class RankedFile:
    """One stored predictions file, ready to correlate."""

    names: tuple[str, ...]  # its image file names, sorted
    names_key: str  # sha256 of the names: files predicting the same image set share it
    scores: np.ndarray  # ``Final_score`` in `names` order
    z: np.ndarray | None  # standardised average ranks of `scores` (centred, unit norm); None: all equal


def standardised_ranks(scores: np.ndarray) -> np.ndarray | None:
    """Average ranks, centred and scaled to unit norm (None for constant scores): the dot product of
    two such vectors is Spearman's rho."""
    ranks = scipy.stats.rankdata(scores, method="average")
    centred = ranks - ranks.mean()
    norm = float(np.sqrt(centred @ centred))
    return None if norm == 0.0 else centred / norm


class RankCache:
    """Ranked prediction files by sha256, least recently used dropped first; thread-safe."""

    def __init__(self, size: int = RANK_CACHE_SIZE) -> None:
        self.size = size
        self.items: OrderedDict[str, RankedFile] = OrderedDict()
        self.name_sets: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.lock = threading.Lock()
        self.misses = 0
        self.blas = ThreadpoolController()  # found once: a fresh `threadpool_limits` scans every library

    def get(self, data_dir: Path, sha256: str) -> RankedFile:
        """The ranked file; `store.PredictionsMissing`, `PredictionsError` or `ValueError` when the
        stored file is gone, altered, unreadable or `sha256` is not a hash."""
        with self.lock:
            if sha256 in self.items:
                self.items.move_to_end(sha256)
                return self.items[sha256]
        ranked = self._rank(store.load(data_dir, sha256))
        with self.lock:
            self.misses += 1
            self.items[sha256] = ranked
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return ranked

    def _rank(self, data: bytes) -> RankedFile:
        predictions = read_predictions(data)
        order = sorted(range(len(predictions.filenames)), key=predictions.filenames.__getitem__)
        names = tuple(predictions.filenames[i] for i in order)
        key = hashlib.sha256("\0".join(names).encode()).hexdigest()
        with self.lock:  # one tuple of names per image set, however many files predict it
            names = self.name_sets.setdefault(key, names)
            self.name_sets.move_to_end(key)
            while len(self.name_sets) > NAME_SETS_KEPT:
                self.name_sets.popitem(last=False)
        scores = predictions.final_score[np.asarray(order, dtype=np.int64)]
        return RankedFile(names=names, names_key=key, scores=scores, z=standardised_ranks(scores))


# -- runs ------------------------------------------------------------------------------------------


class _Run(NamedTuple):
    id: int
    name: str
    team_id: int
    baseline: bool
    status: RunStatus
    review_state: ReviewState
    kendall_tau_b: float | None
    created_at: datetime
    predictions_sha256: str | None
    image_digest: str


_COLUMNS = tuple(getattr(Submission, name) for name in _Run._fields)  # a _Run's columns, in its order


def _runs(session: Session, *where: ColumnElement[bool], order: tuple[Any, ...]) -> list[_Run]:
    """The runs matching `where`, in `order`."""
    return [_Run(*row) for row in session.execute(select(*_COLUMNS).where(*where).order_by(*order))]


def _out(run: _Run, teams: dict[int, str]) -> FlaggedRunOut:
    return FlaggedRunOut(
        id=run.id,
        name=run.name,
        team=teams.get(run.team_id, ""),
        baseline=run.baseline,
        status=RunStatus(run.status).value,
        review_state=ReviewState(run.review_state).value,
        kendall_tau_b=run.kendall_tau_b,
        created_at=run.created_at,
    )


def _flag(kind: FlagKind, runs: Sequence[_Run], teams: dict[int, str], evidence: Any) -> FlagOut:
    team_names = list(dict.fromkeys(teams.get(run.team_id, "") for run in runs))
    return FlagOut(kind=kind, teams=team_names, runs=[_out(r, teams) for r in runs], evidence=evidence)


def team_names(session: Session) -> dict[int, str]:
    return {int(i): str(n) for i, n in session.execute(select(Team.id, Team.name)).all()}


def _order(run: _Run) -> tuple[datetime, int]:
    return (run.created_at, run.id)


# -- the flags -------------------------------------------------------------------------------------


def compute_flags(
    session: Session,
    data_dir: Path,
    cache: RankCache | None = None,
    *,
    rho_threshold: float = RHO_THRESHOLD,
    jump_factor: float = JUMP_FACTOR,
    min_common_images: int = MIN_COMMON_IMAGES,
) -> FlagsOut:
    """Every flag, in kind order (correlated, same image, jumps, repeated infra errors), the strongest
    first within a kind.

    Read-only: nothing is written. A missing or unreadable predictions file, or a report without a
    usable CI, skips that run with a line in ``notes``; it never fails the whole answer.
    """
    cache = cache if cache is not None else RankCache()
    teams = team_names(session)
    succeeded = _runs(session, Submission.status == RunStatus.SUCCEEDED, order=(Submission.id,))
    notes: list[str] = []
    correlated, compared = _correlated(
        succeeded, teams, data_dir, cache, notes, rho_threshold, min_common_images
    )
    flags = [
        *correlated,
        *_same_image(session, teams),
        *_jumps(session, succeeded, teams, notes, jump_factor),
        *_repeated_infra_errors(session, teams),
        *_starter_cards(session, teams),
    ]
    return FlagsOut(
        generated_at=utcnow(),
        runs_compared=compared,
        rho_threshold=rho_threshold,
        jump_factor=jump_factor,
        min_common_images=min_common_images,
        flags=flags,
        notes=notes,
    )


def _correlated(
    runs: list[_Run],
    teams: dict[int, str],
    data_dir: Path,
    cache: RankCache,
    notes: list[str],
    threshold: float,
    min_common: int,
) -> tuple[list[FlagOut], int]:
    files: dict[str, RankedFile] = {}
    broken: dict[str, str] = {}
    runs_of: dict[str, list[_Run]] = defaultdict(list)
    for run in runs:
        sha = run.predictions_sha256
        if sha is None:
            continue
        if sha not in files and sha not in broken:
            try:
                files[sha] = cache.get(data_dir, sha)
            except (store.PredictionsMissing, PredictionsError, ValueError, OSError) as exc:
                broken[sha] = str(exc)
        if sha in broken:
            notes.append(f"run {run.id}: {broken[sha]}; its predictions were not compared")
        elif files[sha].z is None:
            notes.append(f"run {run.id}: every Final_score is equal, so it has no rank correlation")
        else:
            runs_of[sha].append(run)
    groups: dict[str, list[str]] = defaultdict(list)
    for sha in runs_of:
        groups[files[sha].names_key].append(sha)
    keys = list(groups)
    hits: list[tuple[str, str, float, int]] = []
    # one BLAS thread, as the scorer: these products are small, and a thread pool on a shared
    # machine costs more than it brings
    with cache.blas.limit(limits=1, user_api="blas"):
        for i, key_a in enumerate(keys):
            for key_b in keys[i:]:
                hits += _group_hits(
                    files, groups[key_a], groups[key_b], key_a == key_b, threshold, min_common, notes
                )
    flags: list[tuple[float, FlagOut]] = []
    for sha_a, sha_b, rho, n in hits:
        for run_a in runs_of[sha_a]:
            for run_b in runs_of[sha_b]:
                if run_a.team_id == run_b.team_id or (sha_a == sha_b and run_a.id >= run_b.id):
                    continue
                pair = sorted((run_a, run_b), key=_order)
                evidence = CorrelationEvidence(
                    spearman_rho=round(rho, 6), n_images=n, threshold=threshold,
                    same_predictions_file=sha_a == sha_b,
                )  # fmt: skip
                flags.append((rho, _flag(FlagKind.CORRELATED_PREDICTIONS, pair, teams, evidence)))
    flags.sort(key=lambda item: (-item[0], [r.id for r in item[1].runs]))
    return [flag for _, flag in flags], sum(len(v) for v in runs_of.values())


def _group_hits(
    files: dict[str, RankedFile],
    shas_a: list[str],
    shas_b: list[str],
    same_group: bool,
    threshold: float,
    min_common: int,
    notes: list[str],
) -> list[tuple[str, str, float, int]]:
    """(sha_a, sha_b, rho, images compared) of every file pair of two groups with rho >= threshold;
    within one group, each unordered pair once, a file with itself included (rho = 1: runs sharing
    one file)."""
    files_a, files_b = [files[s] for s in shas_a], [files[s] for s in shas_b]
    if same_group:
        n = len(files_a[0].names)
        if n < min_common:
            notes.append(f"{len(files_a)} predictions files of only {n} images were not compared")
            return []
        rows = [f.z for f in files_a if f.z is not None]
        assert len(rows) == len(files_a), "constant files are left out before grouping"
        z = np.stack(rows)
        return [(shas_a[i], shas_a[j], rho, n) for i, j, rho in _pairs_above(z, z, threshold, upper=True)]
    names_a, names_b = files_a[0].names, files_b[0].names
    common = sorted(set(names_a).intersection(names_b))
    if len(common) < min_common:
        if common:
            notes.append(
                f"{len(files_a)} and {len(files_b)} predictions files predict different image sets with only "
                f"{len(common)} images in common; they were not compared"
            )
        return []
    za, kept_a = _restricted(files_a, shas_a, names_a, common)
    zb, kept_b = _restricted(files_b, shas_b, names_b, common)
    if not kept_a or not kept_b:
        return []
    return [
        (kept_a[i], kept_b[j], rho, len(common)) for i, j, rho in _pairs_above(za, zb, threshold, upper=False)
    ]


def _restricted(
    files: list[RankedFile], shas: list[str], names: tuple[str, ...], common: list[str]
) -> tuple[np.ndarray, list[str]]:
    """The files' standardised ranks re-computed on the `common` images (constant ones dropped)."""
    position = {name: i for i, name in enumerate(names)}
    index = np.fromiter((position[name] for name in common), dtype=np.int64, count=len(common))
    rows, kept = [], []
    for ranked, sha in zip(files, shas, strict=True):
        z = standardised_ranks(ranked.scores[index])
        if z is not None:
            rows.append(z)
            kept.append(sha)
    return (np.stack(rows) if rows else np.empty((0, len(common)))), kept


def _pairs_above(
    za: np.ndarray, zb: np.ndarray, threshold: float, *, upper: bool
) -> Iterator[tuple[int, int, float]]:
    """(i, j, rho) with ``za[i] . zb[j] >= threshold``, a block of rows at a time; `upper`: j >= i."""
    for start in range(0, za.shape[0], BLOCK_ROWS):
        block = za[start : start + BLOCK_ROWS] @ zb.T
        for r, c in zip(*np.nonzero(block >= threshold), strict=True):
            i, j = start + int(r), int(c)
            if not upper or j >= i:
                yield i, j, min(1.0, max(-1.0, float(block[r, c])))


def _starter_cards(session: Session, teams: dict[int, str]) -> list[FlagOut]:
    """Succeeded runs (what a maintainer reviews) whose method card was never edited, oldest first."""
    rows = session.execute(
        select(*_COLUMNS, Submission.method_card)
        .where(Submission.status == RunStatus.SUCCEEDED, Submission.method_card.is_not(None))
        .order_by(Submission.id)
    ).all()
    flags = []
    for *columns, card in rows:
        fields = unedited_fields(card if isinstance(card, dict) else None)
        if fields:
            evidence = StarterCardEvidence(unedited_fields=fields)
            flags.append(_flag(FlagKind.STARTER_METHOD_CARD, [_Run(*columns)], teams, evidence))
    return flags


def _same_image(session: Session, teams: dict[int, str]) -> list[FlagOut]:
    shared = (
        select(Submission.image_digest)
        .where(Submission.image_digest != "")
        .group_by(Submission.image_digest)
        .having(func.count(distinct(Submission.team_id)) > 1)
    )
    rows = _runs(
        session,
        Submission.image_digest.in_(shared),
        order=(Submission.image_digest, Submission.created_at, Submission.id),
    )
    flags = []
    for digest, group in groupby(rows, attrgetter("image_digest")):
        runs = list(group)
        evidence = ImageEvidence(image_digest=digest, n_teams=len({r.team_id for r in runs}))
        flags.append(_flag(FlagKind.SAME_IMAGE, runs, teams, evidence))
    return flags


def _jumps(
    session: Session, runs: list[_Run], teams: dict[int, str], notes: list[str], factor: float
) -> list[FlagOut]:
    """Runs that beat their team's best earlier tau-b by more than `factor` x their own CI width."""
    candidates: list[tuple[_Run, _Run]] = []
    by_team: dict[int, list[_Run]] = defaultdict(list)
    for run in runs:
        if run.kendall_tau_b is not None and math.isfinite(run.kendall_tau_b):
            by_team[run.team_id].append(run)
    for team_runs in by_team.values():
        best, *later = sorted(team_runs, key=_order)
        for run in later:
            if _tau(run) > _tau(best):
                candidates.append((run, best))  # a new team best: judge its step
                best = run
    intervals = _tau_intervals(session, [run.id for run, _ in candidates])
    flags: list[tuple[float, FlagOut]] = []
    for run, best in candidates:
        ci = intervals.get(run.id)
        if ci is None or not ci[1] > ci[0]:
            notes.append(f"run {run.id}: its report has no usable 95% CI of tau-b, so a jump was not judged")
            continue
        width = ci[1] - ci[0]
        jump = _tau(run) - _tau(best)
        if jump > factor * width:
            evidence = JumpEvidence(
                kendall_tau_b=_tau(run), previous_best=_tau(best), previous_best_id=best.id,
                jump=jump, ci95=ci, ci_width=width, factor=factor, threshold=factor * width,
            )  # fmt: skip
            flags.append((jump / width, _flag(FlagKind.SUDDEN_JUMP, [run, best], teams, evidence)))
    flags.sort(key=lambda item: (-item[0], item[1].runs[0].id))
    return [flag for _, flag in flags]


def _repeated_infra_errors(session: Session, teams: dict[int, str]) -> list[FlagOut]:
    """Teams with at least `INFRA_ERROR_REPEATS` runs ended ``infra_error``, the most first."""
    failed = (Submission.status == RunStatus.FAILED, Submission.error_code == "infra_error")
    by_team: dict[int, list[_Run]] = defaultdict(list)
    for run in _runs(session, *failed, order=(Submission.created_at, Submission.id)):
        by_team[run.team_id].append(run)
    held = set(session.scalars(select(TeamHold.team_id)))
    repeated = [(team_id, runs) for team_id, runs in by_team.items() if len(runs) >= INFRA_ERROR_REPEATS]
    repeated.sort(key=lambda item: (-len(item[1]), item[1][0].id))
    flags = []
    for team_id, runs in repeated:
        evidence = InfraErrorEvidence(n_runs=len(runs), threshold=INFRA_ERROR_REPEATS, held=team_id in held)
        flags.append(_flag(FlagKind.REPEATED_INFRA_ERRORS, runs, teams, evidence))
    return flags


def _tau(run: _Run) -> float:
    assert run.kendall_tau_b is not None
    return run.kendall_tau_b


def _tau_intervals(session: Session, ids: list[int]) -> dict[int, tuple[float, float]]:
    """``masking.kendall_tau_b.ci95`` of each run's report, where it is two finite numbers."""
    found: dict[int, tuple[float, float]] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        for sub_id, metrics in session.execute(
            select(Submission.id, Submission.metrics).where(Submission.id.in_(chunk))
        ):
            report = Report.read(metrics)
            interval = report.kendall_tau_b.ci95 if report else None
            if interval is not None and all(math.isfinite(v) for v in interval):
                found[int(sub_id)] = (float(interval[0]), float(interval[1]))
    return found
