"""The CSAW-M evaluation metrics, exactly as the dataset authors compute them (docs/scoring.md).

Pure numpy/scipy code: nothing here knows about the database, the runner or the web app, so the
offline ``csawm score`` command and the server produce the same numbers from the same functions.

Modules
-------
metrics        Kendall's tau-b, AMAE (present-classes rule), per-group AMAE, confusion matrix,
               low/high-bin precision, recall and F1.
ranks          average ranks, the private set's floor-median rank ground truth, 8-bin level views.
clinical       AUC and the octile-paired quartile odds ratios (Fisher p, Woolf CI); tie blocks stay whole.
experts        the experts against the consensus, and any rater against each expert's own annotation.
weighted       the same statistics for many bootstrap resamples at once (count-weighted).
bootstrap      resample draws, percentile intervals, paired differences.
predictions    the reader of a model's ``predictions.csv``.
registry       every reported metric with the direction that is better.
report         the report JSON of docs/scoring.md (scorer version 2; schema docs/report.schema.json).
memo           the report parts that depend on the test set alone, computed once per content digest.
render         the human-readable table printed by ``csawm score``.
"""
