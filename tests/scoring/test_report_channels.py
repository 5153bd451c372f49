"""The report-channel benchmark (benchmarks/bench_report_channels.py, issue 19) on one trial each: the
attacker's message comes back from the full report's confusion matrix and not from the summary; the
odds ratios and AUC that both levels show still carry bits (docs/scoring.md, "Disclosure levels")."""

from __future__ import annotations

import math

from benchmarks.bench_report_channels import _rank, _unrank, matrix_bound, report_channels


def test_compositions_round_trip() -> None:
    for n in (0, 1, 5):
        count = math.comb(n + 7, 7)
        assert [_rank(_unrank(r, n, 8)) for r in range(count)] == list(range(count))
        assert all(sum(_unrank(r, n, 8)) == n for r in range(count))
    assert matrix_bound([0] * 8) == 0 and round(matrix_bound([1] * 8)) == 24


def test_each_level_shows_the_bits_the_docs_say() -> None:
    channels = {ch.name: ch for ch in report_channels(trials=2, resamples=0, carriers=60)}
    confusion = channels["confusion matrix"]
    assert confusion.bits > 90 and confusion.bits_per_run("full") == confusion.bits
    assert confusion.bits_per_run("summary") == 0
    for name in ("odds-ratio tables", "AUC"):  # not closed by the summary: measured, documented
        assert channels[name].bits > 4
        assert (
            channels[name].bits_per_run("full")
            == channels[name].bits_per_run("summary")
            == channels[name].bits
        )
