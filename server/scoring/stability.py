"""The stability table (issue 21 item 4): how much the order of a set of runs depends on who
annotated and on the metric.

Kendall tau-b between the runs ordered by the consensus tau-b and ordered by each other figure
their reports already hold: the tau-b against each expert (``masking.per_expert``, scorer version
2), AMAE (lower is better, so negated) and each endpoint's AUC. Nothing is computed again from the
predictions. A low value warns that the order depends on the reference. ``csawm rank`` and the board
both call `stability_table`, so offline and board agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.scoring import ranking
from server.scoring.registry import ENDPOINT_KEYS
from server.scoring.results import Report


def stability_table(reports: Sequence[Report]) -> dict[str, float | None]:
    """``{"expert_1": tau, ..., "amae": tau, "auc_<endpoint>": tau, ...}`` over `reports` (one run
    each); None where fewer than two runs hold both figures (`ranking.stability`). The experts are
    those any report holds an agreement with, as ``expert_k`` (sorted; any case of the report's key)."""
    consensus = [report.kendall_tau_b.value for report in reports]
    per_expert = [{key.lower(): value for key, value in r.per_expert.items()} for r in reports]
    orders: dict[str, list[float | None]] = {}
    for name in sorted({name for taus in per_expert for name in taus}):
        orders[name] = [taus.get(name) for taus in per_expert]
    orders["amae"] = [None if r.amae.value is None else -r.amae.value for r in reports]
    for endpoint in ENDPOINT_KEYS:
        orders[f"auc_{endpoint}"] = [r.clinical[endpoint].auc.value for r in reports]
    return ranking.stability(consensus, orders)
