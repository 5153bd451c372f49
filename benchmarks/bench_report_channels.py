"""Benchmark: bits per run an attacker reads back from a report, at each disclosure level (issue 19).

The model sees the hidden images and writes ``predictions.csv``; the submitter reads the report. A
model that knows the labels of some images (the public test set is published: its levels, and its
cancer outcomes, which the clinical section pools with the private rows) can write bits of the hidden
images into where it puts those images, and the submitter decodes them from the report. Each channel
below plays that attacker end to end: a random message, the predictions that encode it, the report
of the production scorer (``server.scoring.report.score_report``), the body each level shows (the
report as stored for ``full``, ``server.scoring.summary.summary_report`` for ``summary``), and a
decoder that reads only that body. *Bits* = log2 of the number of messages, counted for a run when
the decoder gets the message back exactly (the table gives the mean over the trials).

Test set: the synthetic CSAW-M labels of ``server.benchmark.synth`` (seed 0, 497 public rows, 475
private), the sizes of CSAW-M. Channels, each measured with the others held fixed:

* **confusion matrix** (level layout, the labels of 60 carrier images known; the issue's
  development-phase attack, and a private phase set to ``full`` once an attacker knows some hidden
  labels): the carriers' ``Final_pred`` per true level is a composition of that level's carriers
  into 8 predicted levels; every other row predicts its own label. ``full`` shows the 8x8 matrix, from
  which each composition is read back; ``summary`` withholds it.
* **odds-ratio tables** (private phase, pooled clinical section): all 475 private rows in the middle
  quartiles, the public rows in Q1 and Q4; the message is how many public cases of each kind
  (interval only, large invasive only, both) sit in Q4 rather than Q1. ``full`` shows each endpoint's
  Q4 2x2 table; ``summary`` shows OR Q4's value, whose table is then the only one that fits (OR is
  increasing in the Q4 cases when the quartile sizes are known, and a model knows them).
* **AUC** (private phase, pooled): the offsets of the public interval-only cases among the public
  controls of Q4, and of the large-invasive-only cases among those of Q1. AUC counts the pairs a
  case wins, so each endpoint's value moves by one pair per step. Both levels show it at full
  precision; two calibration runs give the unknown private counts (``P*N`` and the offset).
* the confusion matrix's bound: with every public row a carrier, log2 of the number of 8x8 count
  matrices with the label counts as row sums.
* ``n_positive`` is a figure of the test set: 0 bits per run at either level (``full`` tells the
  count of private cases once).

Not measured: tau-b and AMAE on the private rows (decoding needs the private labels, which the
model does not know), the bootstrap intervals and p-values (more bits at both levels), the Q2/Q3
tables and the per-expert values of ``full`` (more bits there). The figures are therefore lower
bounds of what each level shows.

Usage::

    .venv/bin/python benchmarks/bench_report_channels.py [--trials 5] [--resamples 200] [--carriers 60]

Prints a Markdown table (the report-content rows of docs/run-policy.md's channel table) and one JSON
line with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.benchmark.synth import Split, label_csv, simulate_labels
from server.scoring.clinical import odds_ratio
from server.scoring.labels import LabelLayout, LabelTable, parse_labels
from server.scoring.predictions import Predictions
from server.scoring.report import score_report
from server.scoring.summary import summary_report

LEVELS = ("full", "summary")
SYNTH_SEED = 0
MESSAGE_SEED = 19
Q1, Q4 = 242, 246  # octile quartile sizes of the 972 pooled rows (bins of 121, the remainder in Q4)


def shown(report: dict[str, Any], level: str) -> dict[str, Any]:
    """What a researcher of a `level` phase reads (server.disclosure.disclose.RunDisclosure.report_of)."""
    return report if level == "full" else summary_report(report)


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # not a pytest class

    public: LabelTable
    private: LabelTable

    @classmethod
    def synthetic(cls) -> TestSet:
        labels = simulate_labels(seed=SYNTH_SEED, n_train=0, n_public=497, n_private=475)
        public = parse_labels(label_csv(labels.splits[Split.TEST]).encode(), layout=LabelLayout.PUBLIC)
        private = parse_labels(label_csv(labels.splits[Split.PRIVATE]).encode(), layout=LabelLayout.PRIVATE)
        return cls(public, private)


@dataclass(frozen=True)
class Channel:
    """One channel: its message count and, per level, the runs decoded exactly."""

    name: str
    messages: int
    decoded: dict[str, int]
    trials: int
    seconds: float

    @property
    def bits(self) -> float:
        return math.log2(self.messages)

    def bits_per_run(self, level: str) -> float:
        return self.bits * self.decoded[level] / self.trials


# -- confusion matrix --------------------------------------------------------------------------------


def _compositions(n: int, parts: int) -> int:
    return math.comb(n + parts - 1, parts - 1)


def _unrank(rank: int, n: int, parts: int) -> list[int]:
    """The `rank`-th composition of n into `parts` non-negative parts (lexicographic)."""
    out: list[int] = []
    for i in range(parts - 1):
        for value in range(n + 1):
            count = _compositions(n - value, parts - 1 - i)
            if rank < count:
                out.append(value)
                n -= value
                break
            rank -= count
    return [*out, n]


def _rank(parts: Sequence[int]) -> int:
    n, rank = sum(parts), 0
    for i, value in enumerate(parts[:-1]):
        rank += sum(_compositions(n - v, len(parts) - 1 - i) for v in range(value))
        n -= value
    return rank


def matrix_bound(row_sums: Sequence[int]) -> float:
    """log2 of the number of 8x8 count matrices with these row sums: what a confusion matrix can carry
    at most when the model knows every row's label."""
    return sum(math.log2(_compositions(n, 8)) for n in row_sums)


def confusion_channel(tests: TestSet, carriers: int, trials: int, resamples: int) -> Channel:
    table = tests.public
    assert table.label is not None
    labels = table.label.astype(np.int64)
    rng = np.random.default_rng(MESSAGE_SEED)
    chosen = np.sort(rng.choice(len(table), size=carriers, replace=False))
    groups = {g: chosen[labels[chosen] == g] for g in range(1, 9)}
    radices = [_compositions(len(rows), 8) for rows in groups.values()]
    messages = math.prod(radices)
    others = np.zeros((8, 8), dtype=np.int64)
    for g in range(1, 9):
        others[g - 1, g - 1] = int((labels == g).sum()) - len(groups[g])

    def encode(message: int) -> Predictions:
        pred = labels.copy()
        for rows, radix in zip(groups.values(), radices, strict=True):
            message, digit = divmod(message, radix)
            levels = [
                level for level, count in enumerate(_unrank(digit, len(rows), 8), 1) for _ in range(count)
            ]
            pred[rows] = levels
        return Predictions(table.filenames, pred.astype(np.float64), pred, None)

    def decode(body: dict[str, Any]) -> int | None:
        matrix = ((body.get("masking") or {}).get("levels") or {}).get("confusion_matrix")
        if matrix is None:
            return None
        carried = np.asarray(matrix) - others
        message = 0
        for g in reversed(range(8)):
            message = message * radices[g] + _rank(carried[g].tolist())
        return message

    return _measure(
        "confusion matrix", messages, encode, decode, lambda p: (p, table, None), trials, resamples
    )


# -- pooled clinical section -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pooled:
    """The pooled population's public rows by kind of case, as the attacker (who has the public CSV)
    sees them; the private rows' outcomes stay unknown to it."""

    tests: TestSet
    controls: np.ndarray  # public rows with no endpoint
    interval_only: np.ndarray
    large_only: np.ndarray
    both: np.ndarray

    @classmethod
    def of(cls, tests: TestSet) -> Pooled:
        interval = np.asarray(tests.public.if_interval_cancer, dtype=bool)
        large = np.asarray(tests.public.if_large_invasive_cancer, dtype=bool)
        rows = np.arange(len(tests.public))
        return cls(tests, rows[~interval & ~large], rows[interval & ~large], rows[large & ~interval],
                   rows[interval & large])  # fmt: skip

    def predictions(
        self, bottom: Sequence[int], top: Sequence[int]
    ) -> tuple[Predictions, LabelTable, LabelTable]:
        """Public rows `bottom` (Q1, lowest first) and `top` (Q4), the private rows and the remaining
        public controls in the middle quartiles, in a fixed order."""
        n_private = len(self.tests.private)
        used = set(bottom) | set(top)
        middle_public = [int(r) for r in self.controls if int(r) not in used]
        assert len(bottom) == Q1 and len(top) == Q4 and len(middle_public) + n_private == 972 - Q1 - Q4
        score = np.empty(n_private + len(self.tests.public))
        order = [*(n_private + r for r in bottom), *range(n_private), *(n_private + r for r in middle_public),
                 *(n_private + r for r in top)]  # fmt: skip
        score[np.asarray(order)] = np.arange(len(order), dtype=np.float64)
        names = (*self.tests.private.filenames, *self.tests.public.filenames)
        return Predictions(names, score, None, None), self.tests.private, self.tests.public

    def layout(
        self, in_top: dict[str, int], offsets: Mapping[str, Sequence[int]] | None = None
    ) -> tuple[list[int], list[int]]:
        """Q1 and Q4 rows: the first `in_top[kind]` cases of each kind in Q4, the rest in Q1; controls
        fill both; `offsets` puts cases among the controls of their quartile (else on top of it)."""
        offsets = offsets or {}
        top_cases = {k: list(getattr(self, k)[: in_top[k]]) for k in ("interval_only", "large_only", "both")}
        bottom_cases = {k: list(getattr(self, k)[in_top[k] :]) for k in top_cases}
        n_top = Q4 - sum(map(len, top_cases.values()))
        n_bottom = Q1 - sum(map(len, bottom_cases.values()))
        controls = [int(r) for r in self.controls]
        quartiles = []
        for cases, fill in (
            (bottom_cases, controls[n_top : n_top + n_bottom]),
            (top_cases, controls[:n_top]),
        ):
            rows: list[tuple[float, int]] = [(i, r) for i, r in enumerate(fill)]
            for kind, members in cases.items():
                placed = offsets.get(kind)
                for j, r in enumerate(members):
                    at = placed[j] - 0.5 if placed is not None and j < len(placed) else len(fill) + 0.5
                    rows.append((at, int(r)))
            quartiles.append([r for _, r in sorted(rows)])
        return quartiles[0], quartiles[1]


def or_table_channel(tests: TestSet, trials: int, resamples: int) -> Channel:
    pooled = Pooled.of(tests)
    kinds = ("interval_only", "large_only", "both")
    radices = [len(getattr(pooled, kind)) + 1 for kind in kinds]
    cases = {
        "interval_cancer": len(pooled.interval_only) + len(pooled.both),
        "large_invasive_cancer": len(pooled.large_only) + len(pooled.both),
        "composite": len(pooled.interval_only) + len(pooled.large_only) + len(pooled.both),
    }

    def encode(message: int) -> tuple[Predictions, LabelTable, LabelTable]:
        in_top = {}
        for kind, radix in zip(kinds, radices, strict=True):
            message, in_top[kind] = divmod(message, radix)
        return pooled.predictions(*pooled.layout(in_top))

    def top_cases(body: dict[str, Any], endpoint: str) -> int | None:
        """The endpoint's public cases in Q4: from the 2x2 table, else from OR Q4's value."""
        q4 = body["clinical"][endpoint]["odds_ratios"]["Q4"]
        if "table" in q4:
            return int(q4["table"][0][0])
        fits = [a for a in range(cases[endpoint] + 1) if _same(_or_value(a, cases[endpoint]), q4["value"])]
        return fits[0] if len(fits) == 1 else None

    def decode(body: dict[str, Any]) -> int | None:
        counts: list[int] = []
        for endpoint in cases:
            found = top_cases(body, endpoint)
            if found is None:
                return None
            counts.append(found)
        interval, large, composite = counts
        both = interval + large - composite
        digits = [interval - both, large - both, both]
        message = 0
        for digit, radix in reversed(list(zip(digits, radices, strict=True))):
            message = message * radix + digit
        return message

    return _measure("odds-ratio tables", math.prod(radices), encode, decode, lambda p: p, trials, resamples)


def _or_value(top: int, cases: int) -> float | None:
    value = odds_ratio([[top, Q4 - top], [cases - top, Q1 - cases + top]]).value
    return value if math.isfinite(value) else None


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))


def auc_channel(tests: TestSet, trials: int, resamples: int) -> Channel:
    """Interval-only cases (in Q4) and large-only cases (in Q1) placed among the controls."""
    pooled = Pooled.of(tests)
    in_top = {"interval_only": len(pooled.interval_only), "large_only": 0, "both": len(pooled.both)}
    n_top_controls = Q4 - len(pooled.interval_only) - len(pooled.both)
    n_bottom_controls = Q1 - len(pooled.large_only)
    spans = {"interval_only": len(pooled.interval_only) * n_top_controls + 1,
             "large_only": len(pooled.large_only) * n_bottom_controls + 1}  # fmt: skip
    endpoints = {"interval_only": "interval_cancer", "large_only": "large_invasive_cancer"}

    def spread(total: int, count: int) -> list[int]:
        base, extra = divmod(total, count)
        return [base + (1 if j < extra else 0) for j in range(count)]

    def encode_parts(parts: dict[str, int]) -> tuple[Predictions, LabelTable, LabelTable]:
        offsets = {kind: spread(parts[kind], len(getattr(pooled, kind))) for kind in spans}
        return pooled.predictions(*pooled.layout(in_top, offsets))

    def split(message: int) -> dict[str, int]:
        large, interval = divmod(message, spans["interval_only"])
        return {"interval_only": interval, "large_only": large}

    # two calibration runs (one more pair won per endpoint) give the unknown private counts
    reports = [_report(encode_parts(dict.fromkeys(spans, step)), resamples) for step in (0, 1)]
    calibration: dict[str, dict[str, tuple[float, float]]] = {}
    for level in LEVELS:
        runs = [shown(report, level) for report in reports]
        calibration[level] = {}
        for kind, endpoint in endpoints.items():
            a0, a1 = (run["clinical"][endpoint]["auc"]["value"] for run in runs)
            pairs = 1.0 / (a1 - a0)  # P*N of the endpoint: one step wins one more pair
            calibration[level][kind] = (pairs, a0 * pairs)

    def decode_at(level: str) -> Callable[[dict[str, Any]], int | None]:
        def decode(body: dict[str, Any]) -> int | None:
            parts: dict[str, int] = {}
            for kind, endpoint in endpoints.items():
                pairs, offset = calibration[level][kind]
                parts[kind] = round(body["clinical"][endpoint]["auc"]["value"] * pairs - offset)
            return parts["interval_only"] + spans["interval_only"] * parts["large_only"]

        return decode

    messages = spans["interval_only"] * spans["large_only"]
    return _measure(
        "AUC", messages, lambda m: encode_parts(split(m)), decode_at, lambda p: p, trials, resamples,
        per_level=True, extra_runs=2,
    )  # fmt: skip


# -- the harness -------------------------------------------------------------------------------------


def _report(inputs: tuple[Predictions, LabelTable, LabelTable | None], resamples: int) -> dict[str, Any]:
    predictions, labels, public = inputs
    return score_report(predictions, labels, public_labels=public, resamples=resamples, seed=0).data


def _measure(
    name: str,
    messages: int,
    encode: Callable[[int], Any],
    decoder: Any,
    inputs: Callable[[Any], tuple[Predictions, LabelTable, LabelTable | None]],
    trials: int,
    resamples: int,
    *,
    per_level: bool = False,
    extra_runs: int = 0,
) -> Channel:
    started = time.perf_counter()
    rng = random.Random(MESSAGE_SEED)
    decoded = dict.fromkeys(LEVELS, 0)
    for _ in range(trials):
        message = rng.randrange(messages)
        report = _report(inputs(encode(message)), resamples)
        for level in LEVELS:
            decode = decoder(level) if per_level else decoder
            decoded[level] += int(decode(shown(report, level)) == message)
    seconds = (time.perf_counter() - started) / (trials + extra_runs)
    return Channel(name, messages, decoded, trials, seconds)


def report_channels(*, trials: int = 5, resamples: int = 200, carriers: int = 60) -> list[Channel]:
    """Every measured channel (module docstring) on the synthetic CSAW-M-sized test set."""
    tests = TestSet.synthetic()
    return [
        confusion_channel(tests, carriers, trials, resamples),
        or_table_channel(tests, trials, resamples),
        auc_channel(tests, trials, resamples),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--carriers", type=int, default=60)
    args = parser.parse_args(argv)
    channels = report_channels(trials=args.trials, resamples=args.resamples, carriers=args.carriers)
    print("| report channel | messages | full: bits/run | summary: bits/run | decoded (full, summary) |")
    print("| --- | --- | --- | --- | --- |")
    for ch in channels:
        full, summary = (f"{ch.bits_per_run(level):.1f}" for level in LEVELS)
        decoded = f"{ch.decoded['full']}/{ch.trials}, {ch.decoded['summary']}/{ch.trials}"
        print(f"| {ch.name} | 2^{ch.bits:.1f} | {full} | {summary} | {decoded} |")
    print("| n_positive | 1 | 0 | 0 (withheld) | a figure of the test set |")
    labels = TestSet.synthetic().public.label
    assert labels is not None
    bound = matrix_bound(np.bincount(labels.astype(np.int64), minlength=9)[1:].tolist())
    print(f"\nconfusion matrix, every public row a carrier: at most {bound:.1f} bits per run")
    figures = {
        "channels": {
            ch.name: {"bits": round(ch.bits, 2), "seconds_per_report": round(ch.seconds, 2),
                      **{level: round(ch.bits_per_run(level), 2) for level in LEVELS}}
            for ch in channels
        },
        "confusion_matrix_bound_bits": round(bound, 1),
        "trials": args.trials, "resamples": args.resamples, "carriers": args.carriers,
        "python": platform.python_version(), "machine": platform.machine(),
    }  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
