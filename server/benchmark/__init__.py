"""CSAW-M benchmark data: label-file readers, dataset roots, test-set manifests, synthetic generator.

Modules
-------
labels
    Strict readers for the three ``;``-separated CSAW-M label layouts (public, private, training).
dataset
    A dataset root in the CSAW-M folder layout (``images/preprocessed/<split>``, ``labels/``).
manifest
    The image list plus sha256 of every image and of the labels, so a run can prove its test set.
synth
    The synthetic CSAW-M generator behind ``csawm synth`` (cohort, annotators and images live in
    ``cohort``, ``annotators`` and ``images``).
"""
