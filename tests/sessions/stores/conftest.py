"""Fixtures for store tests on private Redis topologies: a 3-master Cluster and a Sentinel setup."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from tests.redis_topologies import MissingRedisBinary, RedisCluster3, SentinelSetup, command

Topology = TypeVar("Topology", RedisCluster3, SentinelSetup)


@contextmanager
def running(topology: Topology) -> Iterator[Topology]:
    """Start the servers (a missing binary fails the test, never skips it); stop them by PID after."""
    try:
        topology.start()
    except MissingRedisBinary as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="module")
def redis_cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A private 3-master Redis Cluster, shared by one test module, stopped by PID afterwards."""
    with running(RedisCluster3(tmp_path_factory.mktemp("redis-cluster"))) as cluster:
        yield cluster


@pytest.fixture
def stoppable_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A private 3-master cluster for one test, which may stop its nodes (by PID)."""
    with running(RedisCluster3(tmp_path_factory.mktemp("redis-cluster"))) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisCluster3) -> RedisCluster3:
    """The private cluster, emptied first (every master), so DBSIZE counts only this test's keys."""
    for port in redis_cluster_servers.ports:
        command(port, "FLUSHALL")
    return redis_cluster_servers


@pytest.fixture
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A private master + replica + sentinel (`mymaster`), for one test: it may fail over."""
    with running(SentinelSetup(tmp_path_factory.mktemp("redis-sentinel"))) as setup:
        yield setup
