"""A real local Ray cluster for the whole session (``ray.init``: a head node of 2 CPUs).

Ray starts in a short temp dir (its unix sockets' paths must stay short), without the
dashboard and without usage reporting (tests talk to 127.0.0.1 only), and is shut down with
``ray.shutdown()`` at the end: never ``ray stop``, which
would kill every Ray process on the host. Workers find this repository's modules (the test
steps in ``remote_steps.py``) through ``PYTHONPATH``. Every test here is marked ``ray``
(``pytest -m "not ray"`` skips the cluster's start-up).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    temp = tempfile.mkdtemp(prefix="ss-ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # read by the head node ray.init starts
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
