"""The real-Slurm tier: one private single-node cluster for the whole session.

Skips, with one line saying why, where no cluster can start (not root, slurm-wlm or munge
not installed, a daemon that fails). CI installs them first (scripts/install-slurm.sh);
`scripts/test.sh` never does. TMUXTRAIN_REQUIRE_SLURM=1 (set by .ci/run) turns the skip into
a failure; TMUXTRAIN_KEEP_SLURM=1 keeps the cluster's folder (logs, slurm.conf) after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.slurm_cluster import (
    ClusterUnavailable,
    SlurmCluster,
    new_folder,
    reap_leftovers,
    start_cluster,
)

# Fast scheduling for tests: a pending job is considered on the next one-second pass of
# slurmctld's background loop instead of at most every 3 s (see docs/slurm-facts.md).
FAST = "SchedulerParameters=batch_sched_delay=0"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    reap_leftovers()
    folder = new_folder()
    try:
        cluster = start_cluster(folder, extra_conf=FAST)
    except ClusterUnavailable as e:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("TMUXTRAIN_REQUIRE_SLURM"):  # CI: the tier must run
            pytest.fail(f"no Slurm cluster (TMUXTRAIN_REQUIRE_SLURM is set): {e}", pytrace=False)
        pytest.skip(f"no Slurm cluster: {e}")
    try:
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get("TMUXTRAIN_KEEP_SLURM"):
            shutil.rmtree(folder, ignore_errors=True)
