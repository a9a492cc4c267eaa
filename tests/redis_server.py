"""The ``redis_server`` fixture: a real redis-server for one test, stopped at its end.

Debian's ``redis-server`` package (``.ci/run`` installs it), started by ``RedisServer`` from
``benchmarks/_redis.py`` on a free loopback port with no persistence. The fixture skips, saying
why, only when the binary (or redis-py) is not there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks._redis import RedisServer, redis_binary

__all__ = ["RedisServer", "redis_server"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test, stopped at its end."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(
            "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
        )
    pytest.importorskip("redis", reason="redis-py is missing: pip install -e '.[test]'")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
