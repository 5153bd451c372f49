"""Reference ResNet-34 baselines of the CSAW-M paper (one-hot and multi-hot heads).

Ships inside the model images: imports nothing from ``server`` or ``runner``. Only ``model``,
``data``, ``train`` and ``predict`` need torch; ``rules`` (the score rules) and ``build`` (the
host-side image builder) do not.
"""
