"""etc/redis.conf.sample is a config redis-server accepts."""

from __future__ import annotations

import pathlib

import redis

SAMPLE = pathlib.Path(__file__).parents[2] / "etc" / "redis.conf.sample"


def test_sample_config_starts_redis(redis_server_factory):
    # The fixture's own arguments (port, dir, no persistence) override the file's.
    server = redis_server_factory(config=SAMPLE.read_text())
    client = redis.Redis(port=server.port, socket_timeout=2)
    try:
        config = client.config_get("*")
        assert config["appendfsync"] == "everysec"
        assert config["maxmemory-policy"] == "noeviction"
        assert config["aof-load-truncated"] == "yes"
        assert config["busy-reply-threshold"] == "5000"
    finally:
        client.close()
