"""Connecting to Ray: an existing cluster at an address, or a local one started on demand.

Contract: `require_ray()` returns the `ray` module or raises a one-line `ProfilerError` naming the
extra; `connect(address, num_cpus)` leaves Ray initialised in this process and raises a one-line
`ProfilerError` when the cluster cannot be reached. A process that already called `ray.init` (a test,
a notebook) keeps its cluster.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from profiler.errors import ProfilerError


def require_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ProfilerError("--engine ray needs Ray: pip install 'ctxprof[ray]'") from None
    return ray


def connect(address: str | None, *, num_cpus: int | None = None) -> Any:
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # Ray's own banner and the dashboard are noise for a command-line tool.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is not None:
        _check_reachable(address)
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                              "configure_logging": True}
    if address is None:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        where = f"at {address}" if address else "locally"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ProfilerError(f"cannot reach a Ray cluster {where}: {first}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes, logging as it goes; a TCP connection that is
    refused or times out here is reported at once. `auto` (found by Ray itself) is left to Ray."""
    import socket

    host_port = address.split("://", 1)[-1]
    if address == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise ProfilerError(f"cannot reach a Ray cluster at {address}: {reason}; start one with "
                            "`ray start --head`, or leave out --address for a local one") from None


def cluster_cpus() -> int:
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    ray = require_ray()
    return int(ray.cluster_resources().get("GPU", 0))
