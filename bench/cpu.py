"""CPU time per request, by process group, while a scenario is measured (Linux /proc).

On a machine where the generator, gunicorn and PostgreSQL share the cores,
requests/s is set by how much CPU one request costs all of them together, so
the ratio of two scenarios is the inverse ratio of their CPU per request.
This module reads the CPU time (user + system) of the gunicorn workers, of
every PostgreSQL process, and of the generator itself before and after the
measured seconds, and the machine's busy share from /proc/stat.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass
class CpuAccount:
    """Seconds of CPU per group over the window; `per_request_ms` divides by a request count."""

    workers: float = 0.0
    postgres: float = 0.0
    generator: float = 0.0
    busy: float = 0.0  # share of all CPUs busy over the window, 0..1
    available: bool = True
    groups: dict[str, float] = field(default_factory=dict)

    def per_request_ms(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        total = self.workers + self.postgres + self.generator
        return {
            "workers": self.workers * 1000 / requests,
            "postgres": self.postgres * 1000 / requests,
            "generator": self.generator * 1000 / requests,
            "total": total * 1000 / requests,
        }


def _ticks_per_second() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, or 0.0 if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _ticks_per_second()


def postgres_pids() -> list[int]:
    """Every process named postgres on this machine (backends, WAL writer, checkpointer, ...)."""
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def _snapshot(workers: Iterable[int]) -> tuple[dict[int, float], dict[int, float], float, tuple[int, int]]:
    worker_cpu = {pid: process_cpu_seconds(pid) for pid in workers}
    postgres = {pid: process_cpu_seconds(pid) for pid in postgres_pids()}
    return worker_cpu, postgres, process_cpu_seconds(os.getpid()), _machine_jiffies()


@contextmanager
def cpu_accounting(workers: list[int]) -> Iterator[CpuAccount]:
    """Fill a CpuAccount with the CPU spent while the block runs."""
    account = CpuAccount()
    if not (PROC / "stat").exists():
        account.available = False
        yield account
        return
    w0, pg0, g0, (busy0, total0) = _snapshot(workers)
    yield account
    w1, pg1, g1, (busy1, total1) = _snapshot(workers)
    # A process that ended during the window is lost (never counted negative);
    # a PostgreSQL process that started during it counts from zero.
    account.workers = sum(max(0.0, w1[pid] - w0[pid]) for pid in w0)
    account.postgres = sum(max(0.0, seconds - pg0.get(pid, 0.0)) for pid, seconds in pg1.items())
    account.generator = g1 - g0
    account.busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
