"""Device and thread choice shared by training and prediction."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def cgroup_cpu_limit() -> int | None:
    """CPUs granted by the container's CPU quota (cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us``),
    rounded up; None when there is no quota. ``docker run --cpus`` sets a quota, not an affinity, so
    without this torch would start one thread per host core and thrash."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        v1_quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        v1_period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if v1_quota.is_file() and v1_period.is_file():
            quota_us = int(v1_quota.read_text())
            return None if quota_us <= 0 else max(1, math.ceil(quota_us / int(v1_period.read_text())))
    except (OSError, ValueError):
        return None
    return None


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads: `requested`, else min(affinity, cgroup quota). Returns it."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        threads = requested
    else:
        threads = len(os.sched_getaffinity(0))
        quota = cgroup_cpu_limit()
        if quota is not None:
            threads = min(threads, quota)
    torch.set_num_threads(threads)
    return threads


def pick_device(requested: str | None = None) -> torch.device:
    """``cuda`` when a GPU is visible (or as asked), else ``cpu``; asking for an absent GPU fails."""
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no GPU is visible to torch")
    return device
