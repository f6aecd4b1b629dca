"""A queue backlog longer than a lease: the sweeper's checks must not pile up in it.

Each check of a watched run is made by the sweeper itself; only a run that needs a
replay gets a message, and at most one is on its way per run (another only after ten
leases): before, every waiting run got one more message every lease, and the growing
queue made it worse."""

from __future__ import annotations

import re

import pytest

from .test_faults import SHORT_LEASE

pytestmark = pytest.mark.e2e


def test_recovery_checks_do_not_multiply_behind_a_backlog(proj, start_worker):
    worker = start_worker(concurrency=1, extra_env=dict(SHORT_LEASE, DURABLE_TEST_INLINE="0"))
    runs = [proj.two_slow.start(i) for i in range(80)]  # ~8 s of work for one process
    assert [run.result(timeout=120) for run in runs] == [f"{i}+" for i in range(80)]
    checks = re.findall(r"checking for lost work|sending it to a worker", worker.log.read_text())
    # A run waits behind the backlog up to ~4 leases: at most one check each is sent.
    assert len(checks) <= len(runs), len(checks)
