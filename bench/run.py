"""Run the load benchmark: `python -m bench.run` (or `make bench BENCH_ARGS="..."`).

Creates a fresh PostgreSQL database, migrates it, creates users, starts
gunicorn (2 sync workers, DEBUG off) on a free port, warms it, and runs each
scenario for a fixed time at a fixed concurrency. Prints requests/s,
p50/p90/p99 latency and errors per scenario, and each scenario's ratio to
`hello` from the same run. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import server as srv
from .client import Client, client_make
from .cpu import cpu_accounting
from .load import Request, Result, VirtualClient, load_run
from .scenarios import DEFAULT_SCENARIOS, SCENARIOS, Get, Me, Refresh, sign_in, user_email

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds each scenario is measured (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each scenario (default 2)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent virtual clients (default 16)")
    p.add_argument(
        "--obtain-concurrency", type=int, default=4, help="concurrent clients of the sign-in scenarios (default 4)"
    )
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list from {', '.join(SCENARIOS)}; `obtain` runs both hashers (default: all)",
    )
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="HTTP client of the load generator")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL server to use (any database name; env BENCH_DATABASE_URL)",
    )
    p.add_argument("--database", default="authserver_bench", help="database to (re)create for the run")
    p.add_argument("--scale-database", default="authserver_bench_scale", help="database for --scale")
    p.add_argument("--users", type=int, default=64, help="benchmark users per password hasher (default 64)")
    p.add_argument(
        "--scale",
        action="store_true",
        help="also load 1,000,000 outstanding tokens and 100,000 login sessions and compare me/refresh latency",
    )
    p.add_argument("--scale-tokens", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--scale-sessions", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--scale-users", type=int, default=10_000, help="users of the scale data set (default 10,000)")
    p.add_argument(
        "--memory",
        action="store_true",
        help="report worker RSS after the first 1,000 and after 100,000 requests (a fresh server)",
    )
    p.add_argument("--memory-requests", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (repeatable), e.g. DATABASE_CONN_HEALTH_CHECKS=False",
    )
    p.add_argument("--profile", metavar="DIR", help="record each scenario with py-spy (raw stacks) into DIR")
    p.add_argument("--ceiling", action="store_true", help="only measure the load generator against a trivial server")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (default: bench/results/)")
    args = p.parse_args(argv)
    names: list[str] = []
    for name in (s.strip() for s in args.scenarios.split(",") if s.strip()):
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        names += ["obtain", "obtain_pbkdf2"] if name == "obtain" else [name]
    args.scenario_names = list(dict.fromkeys(names))
    return args


# -- reporting -----------------------------------------------------------------------


def table(results: list[Result]) -> str:
    """A Markdown table of the results with the ratios to hello."""
    hello = next((r for r in results if r.name == "hello"), None)
    lines = [
        "| scenario | clients | requests | req/s | p50 ms | p90 ms | p99 ms | errors | req/s ÷ hello |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.rps / hello.rps:.2f}" if hello and hello.rps else "-"
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.requests} | {r.rps:,.0f} | {r.percentile(50):.1f} | "
            f"{r.percentile(90):.1f} | {r.percentile(99):.1f} | {r.errors} | {ratio} |"
        )
    return "\n".join(lines)


def cpu_table(results: list[Result]) -> str:
    """CPU per request by process group: what sets requests/s when the cores are shared and busy."""
    hello = next((r for r in results if r.name == "hello" and r.cpu_ms), None)
    lines = [
        "| scenario | workers ms | PostgreSQL ms | generator ms | all ms | machine busy | hello's all ÷ this |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if not r.cpu_ms:
            continue
        c = r.cpu_ms
        ratio = f"{hello.cpu_ms['total'] / c['total']:.2f}" if hello and c["total"] else "-"
        lines.append(
            f"| {r.name} | {c['workers']:.2f} | {c['postgres']:.2f} | {c['generator']:.2f} | {c['total']:.2f} | "
            f"{r.busy * 100:.0f}% | {ratio} |"
        )
    return "\n".join(lines)


def result_json(r: Result) -> dict[str, object]:
    return {
        "name": r.name,
        "concurrency": r.concurrency,
        "requests": r.requests,
        "seconds": round(r.elapsed, 3),
        "rps": round(r.rps, 1),
        "p50_ms": round(r.percentile(50), 2),
        "p90_ms": round(r.percentile(90), 2),
        "p99_ms": round(r.percentile(99), 2),
        "errors": r.errors,
        "error_kinds": dict(r.error_kinds),
        "cpu_ms_per_request": {k: round(v, 3) for k, v in r.cpu_ms.items()},
        "machine_busy": None if r.busy != r.busy else round(r.busy, 3),
    }


def say(message: str) -> None:
    print(message, flush=True)


# -- running scenarios ---------------------------------------------------------------


@contextmanager
def profiling(directory: str | None, name: str, server: srv.Server, seconds: float) -> Iterator[None]:
    """Record every worker with py-spy while the block runs (raw collapsed stacks)."""
    if not directory:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(directory).mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(Path(directory) / f"{name}-{pid}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in server.worker_pids()
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.wait()


async def scenario_run(args: argparse.Namespace, server: srv.Server, name: str) -> Result:
    scenario = SCENARIOS[name]
    n = (scenario.fixed_concurrency and args.obtain_concurrency) or args.concurrency
    client = client_make(args.client, server.host, server.port, concurrency=n)
    try:
        clients = await scenario.setup(client, n, args.users)
        if args.warmup > 0:
            await load_run(name, client, clients, duration=args.warmup)
        with (
            profiling(args.profile, name, server, args.duration),
            cpu_accounting(server.worker_pids()) as cpu,
        ):
            result = await load_run(name, client, clients, duration=args.duration)
        if cpu.available:
            result.cpu_ms = cpu.per_request_ms(result.requests)
            result.busy = cpu.busy
    finally:
        await client.close()
    say(
        f"  {name:<14} {result.rps:8.0f} req/s  p50 {result.percentile(50):6.1f} ms  "
        f"p99 {result.percentile(99):6.1f} ms  errors {result.errors}"
        + (f" {dict(result.error_kinds)}" if result.errors else "")
    )
    return result


async def _mixed_clients(client: Client, n: int, users: int) -> list[VirtualClient]:
    """The memory run's traffic: mostly `me`, some refresh, JWKS and ping."""

    class Mixed(VirtualClient):
        def __init__(self, parts: list[VirtualClient]) -> None:
            self.parts = parts
            self.i = -1

        def next_request(self) -> Request:
            self.i = (self.i + 1) % len(self.parts)
            return self.parts[self.i].next_request()

        def on_response(self, status: int, body: bytes) -> bool:
            return self.parts[self.i].on_response(status, body)

        async def recover(self, client: Client) -> None:
            await self.parts[self.i].recover(client)

    out: list[VirtualClient] = []
    for i in range(n):
        email = user_email(i % users, hasher="argon2")
        pair = await sign_in(client, email)
        me = Me(pair["access"])
        out.append(
            Mixed([me] * 7 + [Refresh(email, pair["refresh"]), Get("/.well-known/jwks.json"), Get("/api/ping/")])
        )
    return out


async def memory_run(args: argparse.Namespace, server: srv.Server) -> dict[str, object]:
    """Worker RSS after the first 1,000 requests and then every 10,000 up to `--memory-requests`."""
    client = client_make(args.client, server.host, server.port, concurrency=args.concurrency)
    pids = server.worker_pids()
    checkpoints: list[dict[str, object]] = []
    errors = 0
    served = 0
    early: dict[int, int] = {}
    sizes: dict[int, int] = {}

    def checkpoint() -> dict[int, int]:
        sizes = {pid: srv.rss_kib(pid) for pid in pids}
        checkpoints.append({"requests": served, "rss_kib": list(sizes.values())})
        say(f"  after {served:,} requests: " + ", ".join(f"{v / 1024:.1f} MiB" for v in sizes.values()))
        return sizes

    try:
        clients = await _mixed_clients(client, args.concurrency, args.users)
        served = args.concurrency  # the sign-ins that set the clients up
        while served < args.memory_requests:
            target = 1000 if served < 1000 else min(args.memory_requests, (served // 10_000 + 1) * 10_000)
            chunk = await load_run("memory", client, clients, duration=3600, max_requests=target - served)
            served += chunk.requests + chunk.errors
            errors += chunk.errors
            sizes = checkpoint()
            if len(checkpoints) == 1:
                early = sizes
        late = sizes
    finally:
        await client.close()
    growth = max((late[p] - early[p]) / early[p] for p in pids)
    return {
        "requests": served,
        "rss_after_1k_kib": list(early.values()),
        "rss_after_all_kib": list(late.values()),
        "max_growth": round(growth, 4),
        "errors": errors,
        "checkpoints": checkpoints,
    }


def _merged(name: str, parts: list[Result]) -> Result:
    merged = Result(name=name, concurrency=parts[0].concurrency, elapsed=sum(p.elapsed for p in parts))
    for part in parts:
        merged.latencies += part.latencies
        merged.errors += part.errors
        merged.error_kinds.update(part.error_kinds)
    return merged


def ceiling(args: argparse.Namespace) -> None:
    """Measure each client against a server that does nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.trivial_server", str(listener.fileno())],
        cwd=srv.PROJECT,
        pass_fds=[listener.fileno()],
    )
    listener.close()
    try:
        time.sleep(0.5)
        for kind in ("raw", "httpx"):

            async def one(kind: str = kind) -> Result:
                client = client_make(kind, "127.0.0.1", port, concurrency=args.concurrency)
                clients: list[VirtualClient] = [Get("/api/ping/") for _ in range(args.concurrency)]
                try:
                    await load_run("warmup", client, clients, duration=1)
                    return await load_run(kind, client, clients, duration=args.duration)
                finally:
                    await client.close()

            r = asyncio.run(one())
            say(f"  {kind:<6} {r.rps:8.0f} req/s  p50 {r.percentile(50):.2f} ms  errors {r.errors}")
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Prepared:
    url: str
    env: dict[str, str]


def database_prepare(args: argparse.Namespace, name: str) -> Prepared:
    url = srv.database_url(args.database_url, name)
    say(f"database {name}: create, migrate, users")
    srv.database_recreate(url)
    env = srv.server_env(url, extra=args.server_env)
    srv.manage(env, "migrate", "--no-input", "--verbosity", "0")
    srv.users_create(env, users=args.users)
    return Prepared(url=url, env=env)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = f"{os.cpu_count()} CPUs, {_cpu_model()}, {_memory_gib():.0f} GiB"
    say(f"machine: {machine}")
    if args.ceiling:
        say(f"load generator ceiling against a trivial server, {args.concurrency} clients, {args.duration:.0f}s:")
        ceiling(args)
        return 0

    report: dict[str, object] = {
        "machine": machine,
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "client": args.client,
        "duration": args.duration,
        "server_env": args.server_env,
    }
    names = args.scenario_names
    main_names = [n for n in names if SCENARIOS[n].hasher == "argon2"]
    pbkdf2_names = [n for n in names if SCENARIOS[n].hasher == "pbkdf2"]

    db = database_prepare(args, args.database)
    results: list[Result] = []
    say(
        f"server: gunicorn, 2 sync workers; {args.concurrency} clients ({args.obtain_concurrency} for sign-in), "
        f"{args.duration:.0f}s each after {args.warmup:.0f}s warm-up, client {args.client}"
    )
    if main_names:
        with srv.server_running(db.env) as server:
            for name in main_names:
                results.append(asyncio.run(scenario_run(args, server, name)))
    if pbkdf2_names:
        with srv.server_running(srv.server_env(db.url, hasher="pbkdf2", extra=args.server_env)) as server:
            for name in pbkdf2_names:
                results.append(asyncio.run(scenario_run(args, server, name)))
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: order[r.name])
    report["results"] = [result_json(r) for r in results]

    extra: list[str] = []
    by_name = {r.name: r for r in results}
    if "obtain" in by_name and "obtain_pbkdf2" in by_name and by_name["obtain_pbkdf2"].rps:
        speedup = by_name["obtain"].rps / by_name["obtain_pbkdf2"].rps
        report["obtain_argon2_vs_pbkdf2"] = round(speedup, 2)
        extra.append(f"sign-in throughput, Argon2id ÷ PBKDF2: {speedup:.1f}x")

    if args.memory:
        say("memory: a fresh server, mixed traffic (7 me : 1 refresh : 1 jwks : 1 hello)")
        with srv.server_running(db.env) as server:
            memory = asyncio.run(memory_run(args, server))
        report["memory"] = memory
        early, late = memory["rss_after_1k_kib"], memory["rss_after_all_kib"]
        assert isinstance(early, list) and isinstance(late, list)
        extra.append(
            "worker RSS after 1,000 requests: "
            + ", ".join(f"{v / 1024:.1f} MiB" for v in early)
            + f"; after {memory['requests']:,}: "
            + ", ".join(f"{v / 1024:.1f} MiB" for v in late)
            + f"; largest growth {float(str(memory['max_growth'])) * 100:+.1f}%"
        )

    if args.scale:
        scale = database_prepare(args, args.scale_database)
        say(f"scale data: {args.scale_tokens:,} outstanding tokens, {args.scale_sessions:,} login sessions")
        started = time.monotonic()
        srv.manage(
            scale.env,
            "load_scale_data",
            "--tokens",
            str(args.scale_tokens),
            "--sessions",
            str(args.scale_sessions),
            "--users",
            str(args.scale_users),
        )
        srv.database_analyze(scale.url)
        say(f"  loaded in {time.monotonic() - started:.0f}s")
        # Both databases get their own server, and the scenarios alternate
        # empty, scale, scale, empty, so that a load change on this shared
        # machine weighs on both sides alike.
        scaled: list[Result] = []
        with srv.server_running(db.env) as empty_server, srv.server_running(scale.env) as scale_server:
            half = argparse.Namespace(**{**vars(args), "duration": max(3.0, args.duration / 2)})
            for name in ("me", "refresh"):
                sides: dict[str, list[Result]] = {"empty": [], "scale": []}
                for side in ("empty", "scale", "scale", "empty"):
                    server = empty_server if side == "empty" else scale_server
                    say(f"  [{side}]")
                    sides[side].append(asyncio.run(scenario_run(half, server, name)))
                empty, full = (_merged(f"{name} ({side})", sides[side]) for side in ("empty", "scale"))
                scaled += [empty, full]
                p50 = full.percentile(50) / empty.percentile(50)
                p90 = full.percentile(90) / empty.percentile(90)
                report[f"scale_{name}_p50_ratio"] = round(p50, 2)
                report[f"scale_{name}_p90_ratio"] = round(p90, 2)
                extra.append(f"{name} latency with scale data ÷ empty (alternating): p50 {p50:.2f}x, p90 {p90:.2f}x")
        report["scale"] = [result_json(r) for r in scaled]
        results += scaled

    say("")
    say(table(results))
    if any(r.cpu_ms for r in results):
        say("")
        say("CPU per request (user + system, from /proc over the measured seconds):")
        say("")
        say(cpu_table(results))
        say("")
    for line in extra:
        say(f"- {line}")
    path = Path(args.json) if args.json else RESULTS / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    say(f"\nresults: {path}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
