"""A fast kubelet stand-in without containers, for tests about the worker rather than the sandbox.

`InputKubelet` plays a model that predicts exactly the rows of the ``manifest.csv`` its Pod would
mount (the PVC folder + ``subPath`` of the manifest's ``/input`` mount), then runs the real
collector (`runner.kubernetes.collector.collect`, in-process, as fake_cluster K6) on that output, so
the runner, the framing and the worker's validation are all real; only the containers are not. It
reports the same Pod statuses as `docker_kubelet.DockerKubelet` (init container, then collector).
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.kubernetes.collector import collect
from tests.k8s.docker_kubelet import ContainerRun, _initializing, _running, _status, _terminated
from tests.k8s.fake_cluster import FakeCluster, _pending_status


@dataclass
class InputKubelet:
    """See the module docstring. `volumes`: PVC claim name -> host folder; `mounted`: Job name ->
    the folder its model Pod mounted at ``/input``."""

    volumes: dict[str, Path]
    model_seconds: float = 0.05  # how long the "model" runs, so runs overlap across workers
    runs: list[ContainerRun] = field(default_factory=list)
    mounted: dict[str, Path] = field(default_factory=dict)

    async def run_pod(self, cluster: FakeCluster, job: dict[str, Any], job_path: str) -> None:
        pod = await cluster._create_pod(job)
        meta, spec = pod["metadata"], pod["spec"]
        namespace, name = meta["namespace"], meta["name"]
        model = spec["initContainers"][0]
        mount = next(m for m in model["volumeMounts"] if m["mountPath"] == "/input")
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        folder = self.volumes[volume["persistentVolumeClaim"]["claimName"]] / mount.get("subPath", "")
        phase = meta["labels"].get("csawm.io/phase", "")
        self.mounted[job["metadata"]["name"]] = folder
        self.runs.append(ContainerRun(job["metadata"]["name"], name, "model", model["image"], phase))
        await cluster._pod_status(pod, _pending_status("ContainerCreating", ""))
        await cluster._pod_status(pod, _status("Pending", model=_running(), collector=_initializing()))
        await asyncio.sleep(self.model_seconds)
        cluster.logs[(namespace, name, "model")] = f"predicted {folder.name}\n".encode()
        done = _terminated("model", 0, "Completed")
        args = spec["containers"][0]["args"]
        with tempfile.TemporaryDirectory() as output:
            (Path(output) / "predictions.csv").write_text(_predictions(folder))
            out = io.StringIO()
            collect(Path(output), int(args[args.index("--max-bytes") + 1]), out)
        cluster.logs[(namespace, name, "collector")] = out.getvalue().encode()
        await cluster._pod_status(
            pod, _status("Succeeded", model=done, collector=_terminated("collector", 0, "Completed"))
        )
        await cluster._job_complete(job_path)


def _predictions(folder: Path) -> str:
    with (folder / "manifest.csv").open(newline="") as fh:
        names = [row["Filename"] for row in csv.DictReader(fh)]
    return "Filename;Final_score\n" + "".join(f"{n};{i / len(names):.6f}\n" for i, n in enumerate(names))
