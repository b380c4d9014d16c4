"""Redis for the distributed tests: this machine's server (127.0.0.1:6379) for shared-state tests, and a private
redis-server on a free port for tests that stop and restart it (the shared one is never restarted)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("OPTOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available(url: str = REDIS_URL) -> str | None:
    """None if Redis answers, else why not (the skip reason)."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install -e '.[test]')"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"no Redis server at {url}: {exc}"
    return None


def require_redis(url: str = REDIS_URL) -> None:
    reason = redis_available(url)
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared server; its keys are deleted afterwards."""
    require_redis()
    import redis

    prefix = f"optout-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, without persistence: a restart is a cold cache and an empty queue."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (needed to restart Redis mid-crawl)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while redis_available(self.url):
            if time.time() > deadline:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
