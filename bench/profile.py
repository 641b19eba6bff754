"""Profile one scenario in process: `python -m bench.profile me [--requests N] [--html PATH]`.

Builds a fresh benchmark database, then sends requests straight to Django's
WSGI handler (the full middleware stack, no network, no gunicorn) under
pyinstrument, and prints where the time goes plus the mean cost per request.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import Any

from . import server as srv
from .scenarios import PASSWORD, user_email


def environ_for(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        env[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["hello", "me", "refresh", "jwks", "obtain"])
    parser.add_argument("--requests", type=int, default=2000, help="requests to profile (default 2000)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="authserver_bench")
    parser.add_argument("--html", help="also write pyinstrument's HTML report here")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="extra environment (repeatable)"
    )
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print cProfile's top N functions")
    parser.add_argument("--no-setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if not args.no_setup:
        url = srv.database_url(args.database_url, args.database)
        srv.database_recreate(url)
        env = srv.server_env(url, extra=args.server_env)
        srv.manage(env, "migrate", "--no-input", "--verbosity", "0")
        srv.users_create(env, users=4)
        # Re-run in a process whose environment is the server's.
        os.execve(sys.executable, [sys.executable, "-m", "bench.profile", *sys.argv[1:], "--no-setup"], env)

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from pyinstrument import Profiler

    app = WSGIHandler()

    def call(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[str, bytes]:
        status_line: list[str] = []

        def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
            status_line.append(status)

        chunks = app(environ_for(method, path, headers or {}, body), start_response)  # type: ignore[arg-type]
        content = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        return status_line[0], content

    json_headers = {"Content-Type": "application/json"}
    sign_in = json.dumps({"email": user_email(0, hasher="argon2"), "password": PASSWORD}).encode()
    status, content = call("POST", "/api/token/", json_headers, sign_in)
    assert status.startswith("200"), (status, content)
    pair = json.loads(content)
    state = {"refresh": pair["refresh"]}

    def one() -> None:
        if args.scenario == "hello":
            status, _ = call("GET", "/api/ping/")
        elif args.scenario == "jwks":
            status, _ = call("GET", "/.well-known/jwks.json")
        elif args.scenario == "me":
            status, _ = call("GET", "/api/me/", {"Authorization": f"Bearer {pair['access']}"})
        elif args.scenario == "obtain":
            status, _ = call("POST", "/api/token/", json_headers, sign_in)
        else:
            body = json.dumps({"refresh": state["refresh"]}).encode()
            status, content = call("POST", "/api/token/refresh/", json_headers, body)
            state["refresh"] = json.loads(content)["refresh"]
        assert status.startswith("200"), status

    for _ in range(50):
        one()
    # Statements per request, with the process warm; a wrapper sees every
    # statement, even those the debug query log is reset for.
    statements: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        one()
    started = time.perf_counter()
    for _ in range(args.requests):
        one()
    plain = (time.perf_counter() - started) / args.requests
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(args.requests):
        one()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=os.environ.get("BENCH_PROFILE_ALL") == "1"))
    print(
        f"{args.scenario}: {plain * 1000:.3f} ms per request in process (no profiler, no network), "
        f"{len(statements)} SQL statements per request:"
    )
    for sql in statements:
        print("   ", sql[:200])
    if args.cprofile:
        import cProfile
        import pstats

        cprof = cProfile.Profile()
        cprof.enable()
        for _ in range(args.requests):
            one()
        cprof.disable()
        stats = pstats.Stats(cprof)
        stats.sort_stats("cumulative").print_stats(args.cprofile)
        stats.sort_stats("tottime").print_stats(args.cprofile)
    if args.html:
        with open(args.html, "w") as f:
            f.write(profiler.output_html())


if __name__ == "__main__":
    main()
