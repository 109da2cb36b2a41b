"""Fixtures for store tests on private Redis topologies: a 3-master Cluster and a Sentinel setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_topologies import MissingRedisBinary, RedisCluster3, SentinelSetup, command


@pytest.fixture(scope="module")
def redis_cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A private 3-master Redis Cluster, shared by one test module, stopped by PID afterwards."""
    cluster = RedisCluster3(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except MissingRedisBinary as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def stoppable_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A private 3-master cluster for one test, which may stop its nodes (by PID)."""
    cluster = RedisCluster3(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except MissingRedisBinary as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisCluster3) -> RedisCluster3:
    """The private cluster, emptied first (every master), so DBSIZE counts only this test's keys."""
    for port in redis_cluster_servers.ports:
        command(port, "FLUSHALL")
    return redis_cluster_servers


@pytest.fixture
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A private master + replica + sentinel (`mymaster`), for one test: it may fail over."""
    setup = SentinelSetup(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        setup.start()
    except MissingRedisBinary as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield setup
    finally:
        setup.stop()
