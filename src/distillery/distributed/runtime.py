"""Connecting to Ray: the only place that imports `ray` for the driver side.

`ray_session(cfg)` imports ray (missing -> one line naming the extra), starts a local cluster when
`address` is null or connects to the given one (unreachable -> one line), and shuts down only what
it started. Telemetry and the dashboard stay off.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

from ..core.errors import DistilleryError
from .config import EngineParams

log = logging.getLogger(__name__)

INSTALL_HINT = ("engine=ray needs the Ray extra, which is not installed: pip install 'distillery[ray]' "
                "(or `make setup`, which installs it)")


class EngineError(DistilleryError):
    """A Ray setup problem a user can fix (missing extra, unreachable cluster)."""


def import_ray() -> Any:
    """`ray` itself, or one line telling how to install it."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise EngineError(INSTALL_HINT) from None
    return ray


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this venv, never `uv run`
    if os.environ.get("DISTILLERY_LOG", "INFO").upper() != "DEBUG":
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per dataset stage otherwise


@contextlib.contextmanager
def ray_session(cfg: EngineParams) -> Iterator[Any]:
    """Yield `ray`, connected. Reuses an already initialised session (tests, notebooks) as it is."""
    ray = import_ray()
    _quiet_env()
    if cfg.address:
        _probe(cfg.address)
    if ray.is_initialized():
        yield ray
        return
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    if cfg.runtime_env:
        kw["runtime_env"] = cfg.runtime_env
    if cfg.address:
        kw["address"] = cfg.address
    else:
        kw["num_cpus"] = cfg.num_cpus or os.cpu_count() or 1
        if cfg.object_store_mb:
            kw["object_store_memory"] = cfg.object_store_mb * 1024 * 1024
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise EngineError(f"engine.address {cfg.address!r}: cannot reach a Ray cluster there "
                          f"({str(e).splitlines()[0][:160]})") from None
    except Exception as e:  # noqa: BLE001 - ray raises several types for a bad address
        if cfg.address:
            raise EngineError(f"engine.address {cfg.address!r}: cannot connect to a Ray cluster "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
        raise
    try:
        log.info("ray: %s, %s CPUs", cfg.address or "local cluster", ray.cluster_resources().get("CPU"))
        yield ray
    finally:
        ray.shutdown()


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when nothing listens at host:port (ray.init would retry for long)."""
    import socket
    from urllib.parse import urlsplit

    if address in ("auto", "local"):
        return
    u = urlsplit(address if "://" in address else f"tcp://{address}")
    if not u.hostname or not u.port:
        raise EngineError(f"engine.address {address!r}: expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout_s):
            pass
    except OSError as e:
        raise EngineError(f"engine.address {address!r}: cannot reach a Ray cluster there "
                          f"({e.strerror or type(e).__name__})") from None


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
