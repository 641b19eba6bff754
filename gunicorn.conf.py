"""Gunicorn settings for `make serve` and production: `gunicorn -c gunicorn.conf.py config.wsgi`.

Everything a deployment tunes comes from the environment, with defaults that
suit one small machine behind a reverse proxy (see docs/operations.md). This
file is read by gunicorn, not by Django, so it reads `os.environ` itself.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# Where to listen. Behind a proxy on the same host keep 127.0.0.1; in a
# container bind 0.0.0.0 and let the orchestrator publish the port.
bind = [os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]

# Sync workers: the work is CPU-bound (password hashing, RSA signing) and
# short, so one process per core, plus one to cover a worker blocked on the
# database. WEB_CONCURRENCY (the usual platform convention) overrides it.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1)
worker_class = "sync"
threads = _int("GUNICORN_THREADS", 1)

# A request that takes longer than this is stuck: kill and replace the worker.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Slightly longer than a typical proxy's upstream keep-alive (nginx: 60 s is
# its client side; upstream keep-alive is usually a few seconds).
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycle workers now and then so that a slow leak never becomes an outage;
# the jitter keeps them from restarting all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)

# Refuse absurd request lines and headers before Django sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Trust X-Forwarded-* only from the proxy. The default (127.0.0.1) suits a
# proxy on the same host; list the proxy's addresses otherwise. Never "*"
# unless only the proxy can reach this port.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Gunicorn never takes the client address from X-Forwarded-For, so behind an
# HTTP proxy REMOTE_ADDR is the proxy's, and per-address sign-in throttling
# would count every client together. The PROXY protocol (HAProxy
# `send-proxy-v2`, nginx `stream { proxy_protocol on; }`) carries the real
# address into REMOTE_ADDR; accept it only from the proxy's addresses.
proxy_protocol = os.environ.get("GUNICORN_PROXY_PROTOCOL", "off")
proxy_allow_ips = os.environ.get("PROXY_ALLOW_IPS", "127.0.0.1,::1")

# Logs to stdout/stderr, for the process supervisor to collect. The access
# line carries the client address as the proxy saw it, the request id a proxy
# may add, and the duration in microseconds. Never log the Authorization
# header or cookies: they are credentials.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(B)s %(D)sus "%(f)s" "%(a)s" rid=%({x-request-id}i)s'

# GUNICORN_PRELOAD=1 loads the application once in the master (less memory,
# faster start). It is safe: Django opens database connections lazily, per
# worker. Off by default so that a code deploy only needs a HUP.
preload_app = os.environ.get("GUNICORN_PRELOAD", "0").strip().lower() not in {"0", "false", "no", ""}
# Heartbeat files in memory rather than on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's documented choice
proc_name = "authserver"
