"""Reference models: does the quick CPU schedule learn, and how fast do the images predict?

    .venv/bin/python benchmarks/bench_reference.py learn --benchmark DIR [--steps 400] [--resolution 96x78]
    .venv/bin/python benchmarks/bench_reference.py throughput [--images 48] [--cpus 2]

``learn``: for each kind, trains with `reference_models.build.build_reference_image` inside the torch
base image (wall time of training + image build), runs the image on the benchmark's private set in the
production sandbox (runner.docker_backend.DockerRunner, `--cpus`), and scores it with the server's own
scorer (tau-b against the private rank labels). DIR is a dataset root, e.g. from ``csawm synth``.

``throughput``: images/s of each reference image at 632x512 (the paper's input) and at the demo
resolution (96x78) on synthetic images of that size, under the sandbox with `--cpus` CPUs. The
weights for this come from a 1-step training run (the speed of a forward pass does not depend on the
weights' values). Two figures per case: ``model`` = the images/s predict.py reports for its batches
(excludes start-up), ``end-to-end`` = images / container wall time (start-up, torch import, model
load included). The ratio demo/paper of the model figure is reported, as both share the run.

``inprocess``: no Docker, a local torch (the lent GPU machine): section 1 trains the quick schedule
(on the GPU, or with ``--learn-device cpu --cores 0,1`` on 2 pinned cores) and scores it; section 2
times predict on 475 images at 632x512 on the GPU; section 3 times training steps and CPU inference
on 2 pinned cores.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from reference_models.rules import ModelKind
from server.benchmark.dataset import Benchmark
from server.benchmark.synth import generate
from server.scoring.labels import read_labels
from server.scoring.predictions import read_predictions
from server.scoring.report import score_report

if TYPE_CHECKING:
    from runner.spec import RunResult

DEMO_RESOLUTION = (96, 78)
PAPER_RESOLUTION = (632, 512)


def run_image(tag: str, images: list[Path], cpus: float, workdir: Path) -> tuple[RunResult, float]:
    """Run `tag` on `images` in the production sandbox; returns the result and the wall seconds."""
    from runner.docker_backend import DockerRunner
    from runner.io_contract import prepare_input
    from runner.spec import RunLimits, RunSpec, TerminalState

    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    input_dir, output_dir = workdir / f"{run_id}-in", workdir / f"{run_id}-out"
    prepare_input(input_dir, images)
    output_dir.mkdir()
    limits = RunLimits(timeout=timedelta(minutes=60), memory_bytes=8 * 1024**3, cpus=cpus)
    spec = RunSpec(run_id=run_id, image=tag, input_dir=input_dir, output_dir=output_dir, limits=limits)
    runner = DockerRunner()
    started = time.monotonic()
    handle = runner.start(spec)
    result = runner.wait(handle, spec)
    seconds = time.monotonic() - started
    runner.cleanup(handle)
    if result.state is not TerminalState.SUCCEEDED:
        raise SystemExit(f"{tag} failed: {result.error_code} {result.message}\n{result.log_tail}")
    return result, seconds


def model_seconds(log_tail: str) -> float:
    """Seconds predict.py reports for its last batch line ``predicted N/N images (Xs)``."""
    found = re.findall(r"predicted \d+/\d+ images \(([\d.]+)s\)", log_tail)
    if not found:
        raise SystemExit(f"no progress line in the log tail:\n{log_tail}")
    return float(found[-1])


def learn(args: argparse.Namespace) -> None:
    from reference_models.build import build_reference_image, plan_reference_image

    bench = Benchmark.open(args.benchmark)
    labels = read_labels(bench.private_labels)
    images = [bench.private_images / name for name in labels.filenames]
    print(
        f"benchmark {bench.root}: {len(images)} private images; steps {args.steps}, "
        f"resolution {args.resolution[0]}x{args.resolution[1]}, batch {args.batch_size}, cpus {args.cpus}"
    )
    print("| model | train + build (s) | predict private (s) | tau-b (private) | AMAE (rank) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        for kind in ModelKind:
            plan = plan_reference_image(
                kind, bench.root, args.steps, args.resolution, args.lr, batch_size=args.batch_size
            )
            existed = plan.exists()
            started = time.monotonic()
            tag = build_reference_image(
                kind,
                bench.root,
                args.steps,
                args.resolution,
                args.lr,
                batch_size=args.batch_size,
                log=lambda line: None,
            )
            built = "reused" if existed else f"{time.monotonic() - started:.0f}"
            result, seconds = run_image(tag, images, args.cpus, Path(tmp))
            assert result.predictions is not None
            predictions = read_predictions(result.predictions, expected=labels.filenames)
            report = score_report(predictions, labels, resamples=200)
            masking = report.data["masking"]
            tau, amae = masking["kendall_tau_b"], masking["amae"]
            print(
                f"| {kind.value} | {built} | {seconds:.0f} | {tau['value']:.3f} "
                f"[{tau['ci95'][0]:.3f}, {tau['ci95'][1]:.3f}] | {amae['value']:.1f} |",
                flush=True,
            )


def throughput(args: argparse.Namespace) -> None:
    import subprocess

    from reference_models.build import build_reference_image, plan_reference_image

    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        work = Path(tmp)
        for resolution, count in ((PAPER_RESOLUTION, args.images), (DEMO_RESOLUTION, 8 * args.images)):
            root = work / f"synth-{resolution[0]}x{resolution[1]}"
            generate(root, seed=3, n_train=8, n_public=8, n_private=count, resolution=resolution, workers=1)
            bench = Benchmark.open(root)
            images = sorted(bench.private_images.iterdir())
            for kind in ModelKind:
                existed = plan_reference_image(kind, root, 1, resolution, None, batch_size=2).exists()
                tag = build_reference_image(
                    kind, root, 1, resolution, None, batch_size=2, log=lambda line: None
                )
                result, seconds = run_image(tag, images, args.cpus, work)
                if not existed:
                    subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
                compute = model_seconds(result.log_tail)
                rows.append(
                    (kind.value, resolution, len(images), len(images) / compute, len(images) / seconds)
                )
    print(f"load average at end: {os.getloadavg()[0]:.1f}; --cpus {args.cpus}, batch 16 (predict.py default)")
    print("| model | resolution | images | model images/s | end-to-end images/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, resolution, n, model_rate, e2e_rate in rows:
        print(f"| {name} | {resolution[0]}x{resolution[1]} | {n} | {model_rate:.2f} | {e2e_rate:.2f} |")
    for model in ModelKind:
        rates = {r: m for k, r, _, m, _ in rows if k == model.value}
        print(
            f"{model.value}: demo / paper resolution speed ratio "
            f"{rates[DEMO_RESOLUTION] / rates[PAPER_RESOLUTION]:.1f}x"
        )


def _score_outputs(outputs: object, labels: object) -> tuple[float, float]:
    """tau-b and rank AMAE of in-process predictions, through the server's reader and scorer."""
    from reference_models.predict import write_predictions

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.csv"
        write_predictions(path, labels.filenames, outputs)  # type: ignore[attr-defined, arg-type]
        predictions = read_predictions(path, expected=labels.filenames)  # type: ignore[attr-defined]
    masking = score_report(predictions, labels, resamples=200).data["masking"]  # type: ignore[arg-type]
    return masking["kendall_tau_b"]["value"], masking["amae"]["value"]


def inprocess(args: argparse.Namespace) -> None:
    """Without Docker, with a local torch (the GPU machine): the quick schedule's outcome on the
    accelerator, its CPU time per step on 2 pinned cores, CPU and GPU inference images/s."""
    import torch

    from reference_models.predict import predict
    from reference_models.train import TrainConfig, train

    work = Path(args.workdir)
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    if args.cores:
        os.sched_setaffinity(0, args.cores)
    learn_device = args.learn_device or gpu
    threads = 2 if learn_device == "cpu" else None
    accelerator = torch.cuda.get_device_name(0) if gpu == "cuda" else "none"
    print(f"torch {torch.__version__}, accelerator: {accelerator}")
    demo = work / "synth-96x78"
    started = time.monotonic()
    generate(demo, seed=0, n_train=args.n_train, resolution=args.resolution, force=True)
    print(
        f"synthetic benchmark {args.resolution[0]}x{args.resolution[1]}, seed 0, "
        f"{args.n_train} training images, in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    bench = Benchmark.open(demo)
    labels = read_labels(bench.private_labels)

    where = f"{learn_device}" + (f", cores {sorted(os.sched_getaffinity(0))}, 2 threads" if threads else "")
    size = f"{args.resolution[0]}x{args.resolution[1]}"
    print(f"\n## 1. quick schedule ({args.steps} steps, {size}, Adam 1e-3 cosine, random init) on {where}")
    print("| model | batch | train (s) | tau-b (private) | AMAE (rank) |")
    print("| --- | --- | --- | --- | --- |")
    for batch in args.batches:
        for kind in args.kinds:
            started = time.monotonic()
            config = TrainConfig(
                kind,
                demo,
                work / f"{kind.value}-b{batch}",
                steps=args.steps,
                batch_size=batch,
                resolution=args.resolution,
                seed=1,
                device=learn_device,
                threads=threads,
            )
            out = train(config, log=False)
            seconds = time.monotonic() - started
            outputs = predict(
                bench.private_images, labels.filenames, out, batch_size=64, device=learn_device, log=False
            )
            tau, amae = _score_outputs(outputs, labels)
            print(f"| {kind.value} | {batch} | {seconds:.0f} | {tau:.3f} | {amae:.1f} |", flush=True)
    if args.learn_only:
        return

    full = work / "synth-632x512"
    generate(
        full,
        seed=3,
        n_train=8,
        n_public=8,
        n_private=args.gpu_images,
        resolution=PAPER_RESOLUTION,
        force=True,
    )
    full_bench = Benchmark.open(full)
    full_names = sorted(p.name for p in full_bench.private_images.iterdir())
    runs = {}
    for kind in ModelKind:
        config = TrainConfig(
            kind,
            full,
            work / f"{kind.value}-632",
            steps=1,
            batch_size=2,
            resolution=PAPER_RESOLUTION,
            seed=1,
            device=gpu,
        )
        runs[kind] = train(config, log=False)
    if gpu == "cuda":
        print(
            f"\n## 2. GPU predict, {len(full_names)} images at 632x512 "
            f"(batch {args.gpu_batch}, 1 loader thread)"
        )
        for kind in ModelKind:
            predict(
                full_bench.private_images,
                full_names[:64],
                runs[kind],
                batch_size=args.gpu_batch,
                device=gpu,
                log=False,
            )  # warm-up: cuDNN autotune, page cache
            started = time.monotonic()
            predict(
                full_bench.private_images,
                full_names,
                runs[kind],
                batch_size=args.gpu_batch,
                device=gpu,
                log=False,
            )
            seconds = time.monotonic() - started
            print(f"{kind.value}: {len(full_names) / seconds:.1f} images/s ({seconds:.1f} s)", flush=True)

    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    print(f"\n## 3. CPU, pinned to cores {cores}, 2 threads")
    for batch in args.batches:
        for kind in ModelKind:
            config = TrainConfig(
                kind,
                demo,
                work / f"{kind.value}-cpu",
                steps=args.cpu_steps,
                batch_size=batch,
                resolution=DEMO_RESOLUTION,
                seed=1,
                device="cpu",
                threads=2,
            )
            started = time.monotonic()
            train(config, log=False)
            per_step = (time.monotonic() - started) / args.cpu_steps
            print(
                f"train {kind.value} batch {batch}: {per_step:.2f} s/step -> {args.steps} steps "
                f"~{per_step * args.steps / 60:.1f} min",
                flush=True,
            )
    for resolution, n in ((PAPER_RESOLUTION, args.cpu_images), (DEMO_RESOLUTION, 4 * args.cpu_images)):
        for kind in ModelKind:
            if resolution == PAPER_RESOLUTION:
                weights, images, names = runs[kind], full_bench.private_images, full_names[:n]
            else:
                weights, images, names = (
                    work / f"{kind.value}-cpu",
                    bench.private_images,
                    list(labels.filenames[:n]),
                )
            predict(images, names[:16], weights, batch_size=16, device="cpu", log=False)  # warm-up
            started = time.monotonic()
            predict(images, names, weights, batch_size=16, device="cpu", log=False)
            seconds = time.monotonic() - started
            print(
                f"predict {kind.value} {resolution[0]}x{resolution[1]}: {len(names) / seconds:.2f} images/s "
                f"({len(names)} images, {seconds:.1f} s)",
                flush=True,
            )


def _resolution(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_learn = sub.add_parser("learn", help="train both models briefly and score them")
    p_learn.add_argument("--benchmark", type=Path, required=True)
    p_learn.add_argument("--steps", type=int, default=400)
    p_learn.add_argument("--resolution", type=_resolution, default=DEMO_RESOLUTION)
    p_learn.add_argument("--batch-size", type=int, default=32)
    p_learn.add_argument("--lr", type=float, default=None)
    p_learn.add_argument("--cpus", type=float, default=2.0)
    p_thr = sub.add_parser("throughput", help="CPU inference images/s of both images")
    p_thr.add_argument("--images", type=int, default=32, help="at 632x512; 8x as many at 96x78")
    p_thr.add_argument("--cpus", type=float, default=2.0)
    p_in = sub.add_parser("inprocess", help="no Docker: local torch, GPU when present")
    p_in.add_argument("--workdir", type=Path, required=True)
    p_in.add_argument("--steps", type=int, default=400)
    p_in.add_argument("--n-train", type=int, default=9523)
    p_in.add_argument("--resolution", type=_resolution, default=DEMO_RESOLUTION, help="of section 1")
    p_in.add_argument("--learn-device", default=None, help="device of section 1 (default: GPU if any)")
    p_in.add_argument("--learn-only", action="store_true", help="stop after section 1")
    p_in.add_argument(
        "--cores",
        type=lambda t: {int(v) for v in t.split(",")},
        default=None,
        help="pin the process to these CPU cores, e.g. 0,1",
    )
    p_in.add_argument(
        "--kinds", type=lambda t: [ModelKind.parse(v) for v in t.split(",")], default=list(ModelKind)
    )
    p_in.add_argument("--batches", type=lambda t: [int(v) for v in t.split(",")], default=[32])
    p_in.add_argument("--cpu-steps", type=int, default=10)
    p_in.add_argument("--cpu-images", type=int, default=16)
    p_in.add_argument("--gpu-images", type=int, default=475)
    p_in.add_argument("--gpu-batch", type=int, default=32)
    args = parser.parse_args()
    {"learn": learn, "throughput": throughput, "inprocess": inprocess}[args.command](args)


if __name__ == "__main__":
    main()
