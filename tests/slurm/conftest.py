"""The `slurm_cluster` fixture: one real single-node SLURM cluster on loopback for the
session's `slurm` tests (tests/slurm/cluster.py starts and stops it)."""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.slurm.cluster import ClusterError, local_cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM tests install and start daemons, which needs root")
    state = tmp_path_factory.mktemp("slurm")
    stale = str(tmp_path_factory.getbasetemp().parent)  # pytest's temp root: an earlier session's link
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(local_cluster(state, stale_root=stale))
        except ClusterError as exc:
            pytest.fail(str(exc))
        yield cluster
