"""`server.disclosure.run_view`: what each viewer sees of a run's figures and timestamps, per level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.disclosure.hints import BUILTIN_EXCEPTIONS, exception_hint
from server.disclosure.run_view import (
    GIB,
    NEXT_STEP,
    Charge,
    Viewer,
    coarse_figure,
    run_view,
    shown_review,
    shown_time,
)
from server.models import FailedPhase, ReviewState, RunEvent, RunStatus, Submission

T0 = datetime(2025, 3, 4, 10, 0, 7, 123456, tzinfo=UTC)
HIDDEN = {
    "wall_s": 61.237,
    "container_s": 60.981,
    "cpu_s": 59.5,
    "gpu_s": 121.962,
    "peak_memory_bytes": 1_234_567_890,
}
PREFLIGHT = {"wall_s": 3.2, "container_s": 2.9, "cpu_s": 1.1, "gpu_s": None, "peak_memory_bytes": 52_428_800}
TIMINGS = {
    "queue_s": 12.5,
    "image_load_s": 4.25,
    "preflight_started_after_s": 16.8,
    "preflight_s": 3.2,
    "hidden_started_after_s": 20.1,
    "hidden_s": 61.237,
    "scoring_s": 0.4,
}


def _run() -> Submission:
    sub = Submission(
        id=1,
        team_id=1,
        name="m",
        phase="p",
        image_digest="sha256:" + "a" * 64,
        status=RunStatus.SUCCEEDED,
        created_at=T0,
        started_at=T0 + timedelta(seconds=12.5),
        finished_at=T0 + timedelta(seconds=95.731),
        error_detail="exit code 77 on host w-1",
        timings=dict(TIMINGS),
        runtime={
            "phases": {"preflight": dict(PREFLIGHT), "hidden": dict(HIDDEN), "scoring": {"wall_s": 0.4}},
            "image_bytes": 123_456,
            "image_load_s": 4.25,
        },
        reproducibility={
            "image_digest": "sha256:" + "a" * 64,
            "predictions_sha256": "f" * 64,
            "host": "node-7",
            "worker": "w-1",
            "attempt": 1,
            "durations_s": dict(TIMINGS),
            "peak_memory_bytes": {"preflight": 52_428_800, "hidden": 1_234_567_890},
        },
    )
    sub.events = [
        RunEvent(from_status=None, to_status="queued", at=T0, note="submitted"),
        RunEvent(from_status="queued", to_status="preflight", at=T0 + timedelta(seconds=12.5)),
        RunEvent(from_status="preflight", to_status="running", at=T0 + timedelta(seconds=33.4)),
        RunEvent(from_status="running", to_status="scoring", at=T0 + timedelta(seconds=95.3), detail="d"),
        RunEvent(from_status="scoring", to_status="succeeded", at=T0 + timedelta(seconds=95.731)),
    ]
    return sub


def _times(view: Any) -> list[datetime]:
    return [view.started_at, view.finished_at, *(e.at for e in view.events)]


def test_maintainers_level_withholds_every_hidden_figure_from_submitters() -> None:
    view = run_view(_run(), Viewer(staff=False, level="maintainers"))
    assert view.figures == "withheld"
    assert view.timings == {"image_load_s": 4.25, "preflight_s": 3.2}
    assert view.runtime == {"phases": {"preflight": PREFLIGHT}, "image_bytes": 123_456, "image_load_s": 4.25}
    repro = view.reproducibility or {}
    assert repro == {
        "image_digest": "sha256:" + "a" * 64,
        "attempt": 1,
        "durations_s": {"image_load_s": 4.25, "preflight_s": 3.2},
        "peak_memory_bytes": {"preflight": 52_428_800},
    }
    assert view.error_detail is None and all(e.detail is None for e in view.events)


def test_coarse_level_rounds_hidden_durations_up_to_minutes_and_memory_up_to_gib() -> None:
    view = run_view(_run(), Viewer(staff=False, level="coarse"))
    assert view.figures == "coarse"
    phases = (view.runtime or {})["phases"]
    assert phases["preflight"] == PREFLIGHT
    assert phases["hidden"] == {
        "wall_s": 120,
        "container_s": 120,
        "cpu_s": 60,
        "gpu_s": 180,
        "peak_memory_bytes": 2 * GIB,
    }
    assert phases["scoring"] == {"wall_s": 60}
    assert view.timings == {
        "queue_s": 60,
        "image_load_s": 4.25,
        "preflight_started_after_s": 60,
        "preflight_s": 3.2,
        "hidden_started_after_s": 60,
        "hidden_s": 120,
        "scoring_s": 60,
    }
    repro = view.reproducibility or {}
    assert repro["durations_s"] == view.timings
    assert repro["peak_memory_bytes"] == {"preflight": 52_428_800, "hidden": 2 * GIB}
    assert not {"predictions_sha256", "host", "worker"} & set(repro)


def test_submitters_level_shows_the_figures_but_never_the_hash_host_or_worker() -> None:
    sub = _run()
    view = run_view(sub, Viewer(staff=False, level="submitters"))
    assert view.figures == "exact"
    assert view.timings == TIMINGS and view.runtime == sub.runtime
    assert _times(view) == [sub.started_at, sub.finished_at, *(e.at for e in sub.events)]
    repro = view.reproducibility or {}
    assert not {"predictions_sha256", "host", "worker"} & set(repro)
    assert repro["peak_memory_bytes"] == {"preflight": 52_428_800, "hidden": 1_234_567_890}
    assert view.error_detail is None


@pytest.mark.parametrize("level", ["maintainers", "coarse", "submitters"])
def test_maintainers_see_everything_whatever_the_level(level: Any) -> None:
    sub = _run()
    view = run_view(sub, Viewer(staff=True, level=level))
    assert view.figures == "exact"
    assert (view.timings, view.runtime, view.reproducibility) == (
        sub.timings,
        sub.runtime,
        sub.reproducibility,
    )
    assert view.error_detail == sub.error_detail and view.events[3].detail == "d"
    assert _times(view) == [sub.started_at, sub.finished_at, *(e.at for e in sub.events)]


@pytest.mark.parametrize("level", ["maintainers", "coarse"])
def test_submitters_get_every_run_time_but_the_submission_to_the_minute(level: Any) -> None:
    view = run_view(_run(), Viewer(staff=False, level=level))
    assert view.created_at == T0  # the submitter's own act
    assert view.started_at == datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
    assert view.finished_at == datetime(2025, 3, 4, 10, 1, 0, tzinfo=UTC)
    assert all(t is not None and t.second == 0 and t.microsecond == 0 for t in _times(view))
    assert shown_time(None, Viewer(staff=False, level=level)) is None


def test_the_stored_run_is_not_changed_by_a_view() -> None:
    sub = _run()
    before = (dict(sub.timings or {}), dict(sub.runtime or {}), dict(sub.reproducibility or {}))
    for level in ("maintainers", "coarse"):
        run_view(sub, Viewer(staff=False, level=level))
    assert (sub.timings, sub.runtime, sub.reproducibility) == before
    assert sub.runtime is not None and sub.runtime["phases"]["hidden"] == HIDDEN


def test_coarse_figures() -> None:
    assert [coarse_figure("wall_s", v) for v in (0, 0.001, 60, 60.0001, 1799.9)] == [0, 60, 60, 120, 1800]
    assert [coarse_figure("peak_memory_bytes", v) for v in (1, GIB, GIB + 1)] == [GIB, GIB, 2 * GIB]
    # a figure of no known unit, or no number, is withheld rather than shown
    assert coarse_figure("exit_code", 77) is None and coarse_figure("wall_s", "61.2") is None
    assert coarse_figure("wall_s", None) is None and coarse_figure("cpu_s", True) is None


def test_missing_records_stay_missing() -> None:
    sub = Submission(
        id=2, team_id=1, name="q", phase="p", image_digest="x", status=RunStatus.QUEUED, created_at=T0
    )
    sub.events = []
    for staff in (False, True):
        view = run_view(sub, Viewer(staff=staff, level="maintainers"))
        assert (view.timings, view.runtime, view.reproducibility, view.started_at) == (None, None, None, None)


# -- the outcome of a failed run (issue 23 item 1) -------------------------------------------------------


def _failed(phase: FailedPhase, code: str, log: str | None = None) -> Submission:
    sub = _run()
    sub.status, sub.failed_phase, sub.error_code, sub.hidden_log_tail = RunStatus.FAILED, phase, code, log
    sub.review_state = ReviewState.PENDING
    return sub


def test_a_hidden_failure_is_charged_its_log_withheld_and_the_robust_check_next() -> None:
    sub = _failed(FailedPhase.HIDDEN, "oom", "Traceback\nMemoryError\n")
    team = Viewer(staff=False, level="maintainers")
    out = run_view(sub, team, Charge(charged=True, refund_reason=None)).outcome
    assert out is not None and out.charged and out.charge.startswith("charged: a failure on the hidden")
    assert out.log.startswith("the hidden run's log is withheld: only the maintainers")
    assert "`csawm check IMAGE --robust`" in out.next_step and out.hint is None
    assert shown_review(sub) is None and run_view(sub, team).outcome is None  # no ledger: no outcome
    preflight = _failed(FailedPhase.PREFLIGHT, "oom")
    out = run_view(
        preflight, team, Charge(charged=True, refund_reason="preflight failure costs no quota")
    ).outcome
    assert out is not None and not out.charged and out.charge.startswith("refunded: preflight failure")
    assert out.next_step == NEXT_STEP["oom"]


@pytest.mark.parametrize(
    ("log", "hint"),
    [
        ("Traceback (most recent call last):\nValueError: bad shape\n", "ValueError"),
        ("KeyError: 'x'\nduring handling\nRuntimeError: CUDA error\n", "RuntimeError"),
        ("numpy.core._exceptions._ArrayMemoryError: Unable to allocate\n", "other"),
        ("private_17.png density 4 MyOwnError SECRET\n", "other"),  # nothing the model chose
        (None, "other"),
    ],
)
def test_the_hint_is_a_builtin_exception_name_or_other(log: str | None, hint: str) -> None:
    assert exception_hint(log) == hint and hint in BUILTIN_EXCEPTIONS | {"other"}
    sub = _failed(FailedPhase.HIDDEN, "nonzero_exit", log)
    viewer = Viewer(staff=False, level="maintainers", hint="exception_type")
    out = run_view(sub, viewer, Charge(charged=True, refund_reason=None)).outcome
    assert out is not None and out.hint == hint
