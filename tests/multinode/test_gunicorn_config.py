"""gunicorn.conf.py loads, and its knobs follow the environment."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

from tests.live import BASE_DIR, server_env

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]


def _gunicorn(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = server_env(**env)
    for name in ("WEB_CONCURRENCY", "GUNICORN_BIND", "FORWARDED_ALLOW_IPS"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [*GUNICORN, *args, "config.wsgi"], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )


def _printed(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    settings = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


def test_the_config_passes_gunicorns_check() -> None:
    result = _gunicorn("--check-config")
    assert result.returncode == 0, result.stderr


def test_defaults_suit_one_machine_behind_a_local_proxy() -> None:
    settings = _printed(_gunicorn("--print-config"))
    assert settings["workers"] == str(multiprocessing.cpu_count() + 1)
    assert settings["bind"] == "['127.0.0.1:8000']"
    assert settings["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert settings["timeout"] == "30"
    assert settings["accesslog"] == "-"
    assert "%(s)s" in settings["access_log_format"]
    assert "%(D)s" in settings["access_log_format"]


def test_the_environment_overrides_the_defaults() -> None:
    settings = _printed(
        _gunicorn(
            "--print-config",
            WEB_CONCURRENCY="3",
            GUNICORN_BIND="0.0.0.0:9000",
            FORWARDED_ALLOW_IPS="10.0.0.0/8",
            GUNICORN_TIMEOUT="45",
            GUNICORN_PROXY_PROTOCOL="v2",
        )
    )
    assert settings["workers"] == "3"
    assert settings["bind"] == "['0.0.0.0:9000']"
    assert settings["forwarded_allow_ips"] == "['10.0.0.0/8']"
    assert settings["timeout"] == "45"
    assert settings["proxy_protocol"] == "v2"


def test_port_alone_moves_the_default_bind() -> None:
    assert _printed(_gunicorn("--print-config", PORT="8123"))["bind"] == "['127.0.0.1:8123']"
