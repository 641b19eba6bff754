"""The load generator: N virtual clients, each sending one request at a time, for a fixed time."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .client import Client

# A virtual client's next request: (method, path, headers, body); its
# response handler returns True when the response counts as a success.
Request = tuple[str, str, dict[str, str], bytes]


class VirtualClient:
    """One simulated user; scenarios subclass it to carry state between requests."""

    def next_request(self) -> Request:
        raise NotImplementedError

    def on_response(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300

    async def recover(self, client: Client) -> None:
        """Get back into a usable state after an error (untimed)."""
        return None


@dataclass
class Result:
    name: str
    concurrency: int
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    # CPU milliseconds per request by process group (bench/cpu.py), when measured.
    cpu_ms: dict[str, float] = field(default_factory=dict)
    busy: float = float("nan")

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """Latency at percentile `p` (nearest rank), in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[rank] * 1000


async def _drive(
    client: Client,
    vc: VirtualClient,
    deadline: float,
    result: Result,
    budget: list[int] | None,
) -> None:
    clock = time.perf_counter
    while clock() < deadline:
        if budget is not None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        method, path, headers, body = vc.next_request()
        start = clock()
        try:
            status, content = await client.request(method, path, headers=headers, body=body)
        except Exception as e:  # any failure is counted as an error
            result.errors += 1
            result.error_kinds[type(e).__name__] += 1
            await asyncio.sleep(0.01)
            continue
        elapsed = clock() - start
        if vc.on_response(status, content):
            result.latencies.append(elapsed)
        else:
            result.errors += 1
            result.error_kinds[f"HTTP {status}"] += 1
            await vc.recover(client)


async def load_run(
    name: str,
    client: Client,
    clients: list[VirtualClient],
    *,
    duration: float,
    max_requests: int | None = None,
) -> Result:
    """Run every virtual client concurrently for `duration` seconds (or `max_requests` in all)."""
    result = Result(name=name, concurrency=len(clients), elapsed=0.0)
    budget = [max_requests] if max_requests is not None else None
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(_drive(client, vc, deadline, result, budget) for vc in clients))
    result.elapsed = time.perf_counter() - start
    return result


Setup = Callable[[Client, int], Awaitable[list[VirtualClient]]]
