"""bench/cpu.py: CPU per request by process group, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import CpuAccount, cpu_accounting, process_cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")

BUSY = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_a_busy_worker_is_charged_to_the_workers_and_an_idle_generator_is_not():
    # The worker burns 0.4 s of CPU once its stdin closes, then sleeps.
    code = "import sys, time\nsys.stdin.read()\n" + BUSY + "time.sleep(30)\n"
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        time.sleep(0.3)  # interpreter start-up happens before the window
        with cpu_accounting([worker.pid]) as account:
            assert worker.stdin is not None
            worker.stdin.close()
            time.sleep(1.5)
    finally:
        worker.kill()
        worker.wait()
    assert account.available
    assert 0.35 <= account.workers < 1.0
    assert account.generator < 0.2  # this process only slept
    assert account.postgres >= 0.0
    assert 0.0 < account.busy <= 1.0


def test_process_cpu_seconds_counts_a_live_busy_process():
    worker = subprocess.Popen([sys.executable, "-c", BUSY + "time.sleep(30)\n"])
    try:
        before = process_cpu_seconds(worker.pid)
        time.sleep(1.0)
        after = process_cpu_seconds(worker.pid)
    finally:
        worker.kill()
        worker.wait()
    assert after - before >= 0.2
    assert process_cpu_seconds(worker.pid) == 0.0  # gone: nothing, not an error


def test_per_request_ms_divides_each_group():
    account = CpuAccount(workers=1.0, postgres=0.5, generator=0.25)
    assert account.per_request_ms(1000) == {"workers": 1.0, "postgres": 0.5, "generator": 0.25, "total": 1.75}
    assert account.per_request_ms(0) == {}
