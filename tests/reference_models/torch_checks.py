"""Checks of the torch parts of reference_models, run INSIDE the torch base image.

The host's virtualenv has no torch, so ``test_in_torch_image.py`` runs each test here in a container
of ``csawm-base/torch:bookworm`` (Debian's torch 1.13) with the repository mounted read-only::

    python3 tests/reference_models/torch_checks.py ModelTests.test_one_hot_head_shape

Plain ``unittest`` because the image has no pytest. With a local torch 2.x the same file runs as is:
``PYTHONPATH=. python tests/reference_models/torch_checks.py -v``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import resnet18, resnet34

from reference_models.data import ImageDataset, eval_transform, read_train_labels, train_transform
from reference_models.model import FEATURES, build_model, load_trained
from reference_models.predict import HEADER, predict, read_manifest
from reference_models.rules import ModelKind, multi_hot_outputs, one_hot_outputs
from reference_models.train import TrainConfig, loss_function, lr_factor, targets_for, train

REPO = Path(__file__).resolve().parents[2]


def write_tiny_dataset(root: Path, n: int = 12, size: tuple[int, int] = (40, 32), seed: int = 3) -> None:
    """A CSAW-M-layout training set of `n` grey PNGs (height x width `size`) whose brightness
    grows with the level, plus a ``private`` folder of the same images for prediction."""
    rng = np.random.default_rng(seed)
    train_dir = root / "images" / "preprocessed" / "train"
    train_dir.mkdir(parents=True)
    (root / "labels").mkdir()
    rows = ["Filename;Label;If_cancer"]
    for i in range(n):
        level = i % 8 + 1
        pixels = rng.normal(20 + 25 * level, 10, size=size).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(train_dir / f"train_{i + 1}.png")
        rows.append(f"train_{i + 1}.png;{level};0")
    (root / "labels" / "CSAW-M_train.csv").write_text("\n".join(rows) + "\n")


class ModelTests(unittest.TestCase):
    def test_one_hot_head_shape(self) -> None:
        model = build_model(ModelKind.ONE_HOT).eval()
        with torch.no_grad():
            self.assertEqual(tuple(model(torch.rand(2, 3, 64, 52)).shape), (2, 8))
        self.assertEqual((model.head.in_features, model.head.out_features), (FEATURES, 8))

    def test_multi_hot_head_shape(self) -> None:
        model = build_model(ModelKind.MULTI_HOT).eval()
        with torch.no_grad():
            self.assertEqual(tuple(model(torch.rand(3, 3, 96, 78)).shape), (3, 7))
        self.assertEqual((model.head.in_features, model.head.out_features), (FEATURES, 7))

    def test_backbone_is_resnet34_without_classifier(self) -> None:
        model = build_model(ModelKind.ONE_HOT)
        reference = resnet34(weights=None)
        expected = {k for k in reference.state_dict() if not k.startswith("fc.")}
        self.assertEqual(set(model.backbone.state_dict()), expected)

    def test_imagenet_weights_load_from_local_file(self) -> None:
        source = resnet34(weights=None)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resnet34.pth"
            torch.save(source.state_dict(), path)
            model = build_model(ModelKind.MULTI_HOT, imagenet_weights=path)
        self.assertTrue(torch.equal(model.backbone.conv1.weight, source.conv1.weight))
        last_bn = model.backbone.layer4[2].bn2
        self.assertTrue(torch.equal(last_bn.running_var, source.layer4[2].bn2.running_var))

    def test_wrong_imagenet_checkpoint_is_refused_with_reason(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resnet18.pth"
            torch.save(resnet18(weights=None).state_dict(), path)
            with self.assertRaisesRegex(ValueError, "not a torchvision ResNet-34 checkpoint"):
                build_model(ModelKind.ONE_HOT, imagenet_weights=path)
            with self.assertRaisesRegex(ValueError, "not found"):
                build_model(ModelKind.ONE_HOT, imagenet_weights=Path(tmp) / "absent.pth")


class TargetTests(unittest.TestCase):
    def test_multi_hot_targets_are_cumulative(self) -> None:
        targets = targets_for(ModelKind.MULTI_HOT, torch.tensor([0, 2, 7]))
        expected = [[0] * 7, [1, 1, 0, 0, 0, 0, 0], [1] * 7]
        self.assertEqual(targets.int().tolist(), expected)
        self.assertEqual(targets.dtype, torch.float32)

    def test_one_hot_targets_are_class_indices(self) -> None:
        targets = targets_for(ModelKind.ONE_HOT, torch.tensor([0, 5, 7]))
        self.assertEqual(targets.tolist(), [0, 5, 7])
        self.assertEqual(targets.dtype, torch.int64)

    def test_losses_prefer_the_right_level(self) -> None:
        levels = torch.tensor([1, 6])
        for kind in ModelKind:
            criterion = loss_function(kind)
            targets = targets_for(kind, levels)
            if kind is ModelKind.ONE_HOT:
                good = torch.full((2, 8), -5.0)
                good[0, 1] = good[1, 6] = 5.0
            else:
                good = torch.where(targets > 0, torch.tensor(5.0), torch.tensor(-5.0))
            bad = -good
            self.assertLess(float(criterion(good, targets)), float(criterion(bad, targets)), kind)

    def test_cosine_schedule_decays_from_peak(self) -> None:
        self.assertEqual(lr_factor("constant", 399, 400), 1.0)
        self.assertEqual(lr_factor("cosine", 0, 400), 1.0)
        self.assertAlmostEqual(lr_factor("cosine", 200, 400), 0.5)
        self.assertLess(lr_factor("cosine", 399, 400), 1e-4)

    def test_default_lr_depends_on_initialisation(self) -> None:
        scratch = TrainConfig(ModelKind.ONE_HOT, Path("."), Path("."))
        pretrained = TrainConfig(ModelKind.ONE_HOT, Path("."), Path("."), imagenet_weights=Path("w.pth"))
        self.assertEqual((scratch.resolved_lr(), scratch.resolved_schedule()), (1e-3, "cosine"))
        self.assertEqual((pretrained.resolved_lr(), pretrained.resolved_schedule()), (1e-6, "constant"))


class DataTests(unittest.TestCase):
    def test_transforms_give_three_equal_channels_in_unit_range(self) -> None:
        image = Image.fromarray(np.arange(40 * 32, dtype=np.uint8).reshape(40, 32) % 251, mode="L")
        for transform in (eval_transform(), train_transform(augment=True)):
            tensor = transform(image)
            self.assertEqual(tuple(tensor.shape), (3, 40, 32))
            self.assertTrue(torch.equal(tensor[0], tensor[2]))
            self.assertGreaterEqual(float(tensor.min()), 0.0)
            self.assertLessEqual(float(tensor.max()), 1.0)
        plain = eval_transform()(image)
        self.assertAlmostEqual(float(plain[0, 0, 1]), 1 / 255, places=6)

    def test_dataset_resizes_to_model_resolution(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            write_tiny_dataset(Path(tmp), n=2, size=(80, 64))
            images = Path(tmp) / "images" / "preprocessed" / "train"
            dataset = ImageDataset(images, ["train_1.png"], [0], (40, 32), eval_transform())
            tensor, target = dataset[0]
        self.assertEqual((tuple(tensor.shape), target), ((3, 40, 32), 0))

    def test_bad_training_label_names_row_and_column(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.csv"
            path.write_text("Filename;Label\ntrain_1.png;3\ntrain_2.png;9\n")
            with self.assertRaisesRegex(ValueError, "row 2, column Label: expected 1..8, got '9'"):
                read_train_labels(path)

    def test_missing_training_image_is_named(self) -> None:
        with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, "absent.png"):
            ImageDataset(Path(tmp), ["absent.png"], [0], (40, 32), eval_transform())


class TrainPredictTests(unittest.TestCase):
    """A 2-step training run per kind, then ``predict`` as the container would run it."""

    _tmp: tempfile.TemporaryDirectory[str]
    root: Path
    runs: dict[ModelKind, Path]

    @classmethod
    def setUpClass(cls) -> None:
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls._tmp.name)
        write_tiny_dataset(cls.root / "data")
        cls.runs = {}
        for kind in ModelKind:
            config = TrainConfig(
                kind,
                cls.root / "data",
                cls.root / kind.value,
                steps=2,
                batch_size=4,
                resolution=(40, 32),
                seed=11,
                threads=1,
            )
            cls.runs[kind] = train(config, log=False)

    @classmethod
    def tearDownClass(cls) -> None:
        cls._tmp.cleanup()

    def test_training_writes_weights_and_config(self) -> None:
        for kind, out in self.runs.items():
            record = json.loads((out / "config.json").read_text())
            self.assertEqual(record["kind"], kind.value)
            self.assertEqual(record["resolution"], [40, 32])
            self.assertEqual((record["steps"], record["lr"], record["schedule"]), (2, 1e-3, "cosine"))
            self.assertTrue(np.isfinite(record["final_loss"]))
            model = load_trained(kind, out / "model.pt")
            self.assertEqual(model.head.out_features, kind.n_outputs)

    def test_training_is_reproducible_for_a_seed(self) -> None:
        kind = ModelKind.ONE_HOT
        again = train(
            TrainConfig(
                kind,
                self.root / "data",
                self.root / "again",
                steps=2,
                batch_size=4,
                resolution=(40, 32),
                seed=11,
                threads=1,
            ),
            log=False,
        )
        first = torch.load(self.runs[kind] / "model.pt", weights_only=True)
        second = torch.load(again / "model.pt", weights_only=True)
        self.assertTrue(all(torch.allclose(first[k].float(), second[k].float()) for k in first))

    def test_wrong_kind_weights_are_refused(self) -> None:
        with self.assertRaisesRegex(ValueError, "does not hold one-hot ResNet-34 weights"):
            load_trained(ModelKind.ONE_HOT, self.runs[ModelKind.MULTI_HOT] / "model.pt")

    def _run_entrypoint(
        self, kind: ModelKind, names: list[str], tag: str
    ) -> tuple[subprocess.CompletedProcess[str], Path]:
        input_dir = self.root / f"input-{tag}"
        output_dir = self.root / f"output-{tag}"
        (input_dir / "images").mkdir(parents=True)
        output_dir.mkdir()
        train_dir = self.root / "data" / "images" / "preprocessed" / "train"
        for name in names:
            if (train_dir / name).is_file():
                (input_dir / "images" / name).write_bytes((train_dir / name).read_bytes())
        (input_dir / "manifest.csv").write_text("Filename\n" + "".join(f"{n}\n" for n in names))
        env = dict(
            os.environ,
            CSAWM_INPUT_DIR=str(input_dir),
            CSAWM_OUTPUT_DIR=str(output_dir),
            CSAWM_WEIGHTS_DIR=str(self.runs[kind]),
            CSAWM_BATCH_SIZE="5",
            CSAWM_CONTRACT="1",
            PYTHONPATH=str(REPO),
        )
        result = subprocess.run(
            [sys.executable, "-m", "reference_models.predict"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return result, output_dir / "predictions.csv"

    def test_entrypoint_writes_authors_format_following_the_rules(self) -> None:
        names = [f"train_{i}.png" for i in (7, 1, 12, 3, 9, 2, 5, 11, 4, 6, 10, 8)]  # not sorted
        for kind in ModelKind:
            result, path = self._run_entrypoint(kind, names, kind.value)
            self.assertEqual(result.returncode, 0, result.stderr)
            with path.open(newline="") as handle:
                rows = list(csv.reader(handle, delimiter=";"))
            self.assertEqual(rows[0], HEADER)
            self.assertEqual([r[0] for r in rows[1:]], names)
            probs = np.array([[float(v) for v in r[1:9]] for r in rows[1:]])
            pred = np.array([int(r[9]) for r in rows[1:]])
            score = np.array([float(r[10]) for r in rows[1:]])
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
            # The file must be what the numpy rules make of the model's own logits.
            model = load_trained(kind, self.runs[kind] / "model.pt").eval()
            dataset = ImageDataset(
                self.root / f"input-{kind.value}" / "images",
                names,
                range(len(names)),
                (40, 32),
                eval_transform(),
            )
            with torch.no_grad():
                logits = model(torch.stack([dataset[i][0] for i in range(len(names))])).double().numpy()
            rules = one_hot_outputs(logits) if kind is ModelKind.ONE_HOT else multi_hot_outputs(logits)
            np.testing.assert_array_equal(pred, rules.pred)
            np.testing.assert_allclose(score, rules.score, atol=1e-5)
            np.testing.assert_allclose(probs, rules.probs, atol=1e-5)

    def test_entrypoint_fails_naming_a_missing_image(self) -> None:
        result, path = self._run_entrypoint(ModelKind.ONE_HOT, ["train_1.png", "absent_9.png"], "missing")
        self.assertEqual(result.returncode, 1)
        self.assertIn("absent_9.png", result.stderr)
        self.assertFalse(path.exists())

    def test_predict_function_keeps_manifest_order_across_batches(self) -> None:
        images = self.root / "data" / "images" / "preprocessed" / "train"
        names = [f"train_{i}.png" for i in range(1, 13)]
        forward = predict(images, names, self.runs[ModelKind.MULTI_HOT], batch_size=5, log=False)
        backward = predict(images, names[::-1], self.runs[ModelKind.MULTI_HOT], batch_size=7, log=False)
        np.testing.assert_allclose(forward.score, backward.score[::-1], atol=1e-6)


class ManifestTests(unittest.TestCase):
    def test_manifest_header_and_duplicates_are_checked(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.csv"
            path.write_text("Filename\na.png\nb.png\n")
            self.assertEqual(read_manifest(path), ["a.png", "b.png"])
            path.write_text("Name\na.png\n")
            with self.assertRaisesRegex(ValueError, "header row 'Filename'"):
                read_manifest(path)
            path.write_text("Filename\na.png\na.png\n")
            with self.assertRaisesRegex(ValueError, "row 2: duplicate file name 'a.png'"):
                read_manifest(path)


if __name__ == "__main__":
    unittest.main()
