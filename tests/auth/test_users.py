"""User stores: the Redis, PostgreSQL and JSON-file ones fulfil the same contract."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from auth import (
    AuthUnavailable,
    FileUserStore,
    PostgresUserStore,
    RedisUserStore,
    UsernameTaken,
    UserStore,
)
from auth.postgres import connect


@pytest.fixture(params=["file", "redis", "postgres"])
async def users(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[UserStore]:
    if request.param == "file":
        yield FileUserStore(tmp_path / "instance" / "users.json")
    elif request.param == "redis":
        yield RedisUserStore(redis_client, prefix=key_prefix.removesuffix("sess:") + "auth:")
    else:
        database = connect(request.getfixturevalue("postgres_database"))
        yield PostgresUserStore(database)
        await database.close()


async def test_create_and_find(users: UserStore) -> None:
    user = await users.create("Alice", "$argon2id$hash")
    assert user.username == "Alice" and user.password_hash == "$argon2id$hash"
    assert await users.get(user.id) == user
    assert await users.by_username("alice") == user
    assert await users.by_username(" ALICE ") == user
    assert await users.get("missing") is None
    assert await users.by_username("bob") is None


async def test_usernames_are_unique_case_insensitively(users: UserStore) -> None:
    await users.create("Alice", "h1")
    with pytest.raises(UsernameTaken):
        await users.create("aLICE", "h2")
    assert (await users.by_username("alice")).password_hash == "h1"  # type: ignore[union-attr]


async def test_concurrent_registrations_of_one_name_make_one_user(users: UserStore) -> None:
    results = await asyncio.gather(
        *(users.create("race", f"h{n}") for n in range(8)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1
    assert all(isinstance(r, UsernameTaken) for r in results if r not in created)
    assert await users.by_username("race") == created[0]


async def test_set_password_hash(users: UserStore) -> None:
    user = await users.create("alice", "old")
    updated = await users.set_password_hash(user.id, "new")
    assert updated is not None and updated.password_hash == "new"
    assert (await users.get(user.id)).password_hash == "new"  # type: ignore[union-attr]
    assert await users.set_password_hash("missing", "new") is None


async def test_ids_are_random(users: UserStore) -> None:
    first = await users.create("one", "h")
    second = await users.create("two", "h")
    assert first.id != second.id and len(first.id) >= 24


async def test_ping(users: UserStore) -> None:
    assert await users.ping()


async def test_file_store_writes_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users = FileUserStore(path)
    for number in range(5):
        await users.create(f"user{number}", "h")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.json", "users.json.lock"]
    assert len(json.loads(path.read_text())["users"]) == 5


async def test_file_store_survives_a_new_instance(tmp_path: Path) -> None:
    user = await FileUserStore(tmp_path / "users.json").create("alice", "h")
    assert await FileUserStore(tmp_path / "users.json").get(user.id) == user


async def test_unreadable_file_is_a_503_not_a_500(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(AuthUnavailable) as caught:
        await FileUserStore(path).by_username("alice")
    assert caught.value.code == 503


async def test_unreachable_redis_is_a_503_not_a_500() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    users = RedisUserStore(client, prefix="test:unreachable:")
    with pytest.raises(AuthUnavailable):
        await users.by_username("alice")
    assert not await users.ping()
    await client.aclose()


async def test_a_new_password_counts_one_more_generation(users: UserStore) -> None:
    user = await users.create("alice", "first")
    assert user.generation == 0
    changed = await users.set_password_hash(user.id, "second")
    assert changed is not None and changed.generation == 1
    assert await users.get(user.id) == changed
    assert (await users.by_username("alice")) == changed


async def test_an_upgraded_hash_keeps_the_generation_and_never_overwrites_a_new_password(
    users: UserStore,
) -> None:
    user = await users.create("alice", "old parameters")
    upgraded = await users.upgrade_password_hash(user.id, "old parameters", "new parameters")
    assert upgraded is not None
    assert (upgraded.password_hash, upgraded.generation) == ("new parameters", 0)

    await users.set_password_hash(user.id, "a new password")
    stale = await users.upgrade_password_hash(user.id, "new parameters", "rehash of the old one")
    assert stale is None
    current = await users.get(user.id)
    assert current is not None and current.password_hash == "a new password"
    assert await users.upgrade_password_hash("missing", "a", "b") is None


async def test_records_from_before_generations_read_as_generation_zero(users: UserStore) -> None:
    user = await users.create("alice", "h")
    legacy = {k: v for k, v in user.to_json().items() if k != "generation"}
    if isinstance(users, RedisUserStore):
        await users.client.set(f"{users.prefix}user:{user.id}", json.dumps(legacy))
    elif isinstance(users, PostgresUserStore):
        await users.table.run(
            lambda c: c.execute(
                f"UPDATE {users.table.sql_name} SET created = NULL, generation = DEFAULT"
                " WHERE id = $1",
                user.id,
            )
        )
        user = dataclasses.replace(user, created="")
    else:
        assert isinstance(users, FileUserStore)
        data = json.loads(users.path.read_text())
        data["users"][user.id] = legacy
        users.path.write_text(json.dumps(data))
    assert (await users.get(user.id)) == user
    changed = await users.set_password_hash(user.id, "h2")
    assert changed is not None and changed.generation == 1
