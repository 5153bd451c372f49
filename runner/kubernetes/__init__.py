"""Kubernetes backend: runs model images as Jobs on GPU nodes (docs/design.md, Runners).

Modules: `config` (deployment settings), `manifest` (pure Job builder), `failures` (pure
classification of Job/Pod/Event state), `framing` (the collector's log frame), `collector` (the
trusted main container, ``python -m runner.kubernetes.collector``), `executor` (`KubernetesRunner`,
the `runner.spec.Runner` on the official client). Nothing is imported here, so the collector starts
without loading the Kubernetes client.
"""
