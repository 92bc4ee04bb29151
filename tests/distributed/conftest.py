"""One local 2-CPU Ray cluster for the whole session (started on first use, shut down at the end)."""

from __future__ import annotations

import os

import pytest

KEY_ENV = "DIST_TEST_LLM_KEY"
FAKE_KEY = "sk-dist-test-4a1f"


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ[KEY_ENV] = FAKE_KEY  # workers inherit the driver's environment at init
    os.environ.setdefault("DISTILLERY_PROGRESS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
