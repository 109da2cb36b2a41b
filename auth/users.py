"""Where users live: the async ``UserStore`` contract; Redis, PostgreSQL and JSON-file stores."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis

from .errors import AuthUnavailable, unavailable_as_503
from .postgres import AuthTable, Database

__all__ = [
    "AnonymousUser",
    "FileUserStore",
    "PostgresUserStore",
    "RedisUserStore",
    "User",
    "UserStore",
    "UsernameTaken",
    "owner_key",
    "username_key",
]

T = TypeVar("T")


def username_key(username: str) -> str:
    """The case-insensitive form of a username: ``username_key("Ann") == "ann"``."""
    return username.strip().casefold()


def owner_key(user_id: str) -> str:
    """The owner of a user's sessions in the sessions store's index: ``owner_key("ab12") == "user:ab12"``."""
    return f"user:{user_id}"


@dataclass(frozen=True)
class User:
    """A registered user; ``password_hash`` is an argon2 hash, never the password.

    ``generation`` counts password changes: a sign-in checked against an older generation is
    stale (see ``login_user``).
    """

    id: str
    username: str
    password_hash: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    generation: int = 0

    @property
    def is_authenticated(self) -> bool:
        """Always true: templates test ``current_user.is_authenticated``."""
        return True

    def to_json(self) -> dict[str, str | int]:
        """The stored form of the user."""
        return {
            "id": self.id,
            "username": self.username,
            "password_hash": self.password_hash,
            "created": self.created,
            "generation": self.generation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> User:
        """Rebuild a user from its stored form."""
        return cls(
            id=str(data["id"]),
            username=str(data["username"]),
            password_hash=str(data["password_hash"]),
            created=str(data.get("created", "")),
            generation=int(data.get("generation") or 0),
        )


@dataclass(frozen=True)
class AnonymousUser:
    """The user of a request that is not signed in."""

    id: None = None
    username: None = None

    @property
    def is_authenticated(self) -> bool:
        """Always false."""
        return False


class UsernameTaken(Exception):
    """Raised by ``UserStore.create`` when the username (case-insensitively) exists."""


class UserStore(ABC):
    """The async contract every user store fulfils.

    Example::

        user = await store.create("ann", await passwords.hash("a long secret"))
        assert (await store.by_username("ANN")) == user
    """

    @abstractmethod
    async def get(self, user_id: str) -> User | None:
        """The user with this id, or ``None``."""

    @abstractmethod
    async def by_username(self, username: str) -> User | None:
        """The user with this username (case-insensitive), or ``None``."""

    @abstractmethod
    async def create(self, username: str, password_hash: str) -> User:
        """Add a user with a fresh id; raises ``UsernameTaken``."""

    @abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str) -> User | None:
        """A new password: store its hash and count one more generation.

        Returns the updated user, ``None`` when it does not exist.
        """

    @abstractmethod
    async def upgrade_password_hash(
        self, user_id: str, old_hash: str, new_hash: str
    ) -> User | None:
        """The same password hashed anew (new parameters, normalised form), generation unchanged.

        Only while the stored hash is still ``old_hash``: a password changed meanwhile is
        never overwritten.  Returns the updated user, else ``None``.
        """

    async def ping(self) -> bool:
        """True when the backend answers and accepts writes."""
        return True

    @staticmethod
    def new_id() -> str:
        """A random, unguessable user id."""
        return secrets.token_hex(12)


# The name claim (SET NX) and the user record are written together or not at all.
_CREATE_USER = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# Change the hash inside the stored JSON atomically. ARGV[1]: the new hash; ARGV[2]: the hash
# that must still be stored (an upgrade), or '' for a new password, which counts a generation.
_SET_HASH = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local user = cjson.decode(raw)
if ARGV[2] ~= '' then
  if user['password_hash'] ~= ARGV[2] then return false end
else
  user['generation'] = (tonumber(user['generation']) or 0) + 1
end
user['password_hash'] = ARGV[1]
raw = cjson.encode(user)
redis.call('SET', KEYS[1], raw)
return raw
"""


class RedisUserStore(UserStore):
    """Users in Redis: a JSON string per user and a username→id key, both under ``prefix``.

    Example::

        users = RedisUserStore(Redis.from_url("redis://127.0.0.1:6379/0"), prefix="auth:")
    """

    def __init__(self, client: Redis, *, prefix: str = "auth:") -> None:
        self.client = client
        self.prefix = prefix
        self._create_script = client.register_script(_CREATE_USER)
        self._set_hash_script = client.register_script(_SET_HASH)

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def _name_key(self, username: str) -> str:
        return f"{self.prefix}username:{username_key(username)}"

    async def get(self, user_id: str) -> User | None:
        with unavailable_as_503("the user store"):
            raw = await self.client.get(self._user_key(user_id))
        return None if raw is None else User.from_json(json.loads(raw))

    async def by_username(self, username: str) -> User | None:
        with unavailable_as_503("the user store"):
            user_id = await self.client.get(self._name_key(username))
        if user_id is None:
            return None
        return await self.get(user_id.decode() if isinstance(user_id, bytes) else str(user_id))

    async def create(self, username: str, password_hash: str) -> User:
        user = User(id=self.new_id(), username=username, password_hash=password_hash)
        keys = [self._name_key(username), self._user_key(user.id)]
        with unavailable_as_503("the user store"):
            claimed = await self._create_script(
                keys=keys, args=[user.id, json.dumps(user.to_json())]
            )
        if not claimed:
            raise UsernameTaken(username)
        return user

    async def set_password_hash(self, user_id: str, password_hash: str) -> User | None:
        return await self._set_hash(user_id, password_hash, "")

    async def upgrade_password_hash(
        self, user_id: str, old_hash: str, new_hash: str
    ) -> User | None:
        return await self._set_hash(user_id, new_hash, old_hash)

    async def _set_hash(self, user_id: str, password_hash: str, expected: str) -> User | None:
        with unavailable_as_503("the user store"):
            raw = await self._set_hash_script(
                keys=[self._user_key(user_id)], args=[password_hash, expected]
            )
        return None if raw is None else User.from_json(json.loads(raw))

    async def ping(self) -> bool:
        """A short-lived write: PING alone answers while Redis refuses writes (OOM, READONLY, MISCONF)."""
        try:
            with unavailable_as_503("the user store"):
                await self.client.set(f"{self.prefix}health-probe", "1", px=10_000)
        except AuthUnavailable:
            return False
        return True


_USERS_TABLE = (
    # username_key is the case-folded name (Python's casefold, not SQL's lower): its unique
    # constraint is what makes one of many parallel registrations of a name win.
    "CREATE TABLE {table} (id text PRIMARY KEY, username text NOT NULL,"
    " username_key text NOT NULL UNIQUE, password_hash text NOT NULL,"
    " created timestamptz, generation integer NOT NULL DEFAULT 0)",
)
_USER_COLUMNS = "id, username, password_hash, created, generation"


class PostgresUserStore(UserStore):
    """Users in a PostgreSQL table (``auth_users`` by default), created when missing.

    Every operation is one statement: a registration is an ``INSERT … ON CONFLICT DO NOTHING``
    on the unique case-folded name, a password change an ``UPDATE`` that counts the generation.
    Example::

        users = PostgresUserStore(auth.postgres.connect("postgresql://app@db/app"))
        users = PostgresUserStore(sessions_store.connections, table="shop_users")  # one pool
    """

    def __init__(self, database: Database, *, table: str = "auth_users") -> None:
        self.table = AuthTable(database, table, _USERS_TABLE)
        t = self.table.sql_name
        self._get = f"SELECT {_USER_COLUMNS} FROM {t} WHERE id = $1"
        self._by_name = f"SELECT {_USER_COLUMNS} FROM {t} WHERE username_key = $1"
        self._create = (
            f"INSERT INTO {t} (id, username, username_key, password_hash, created, generation)"
            " VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (username_key) DO NOTHING RETURNING id"
        )
        self._set_hash = (
            f"UPDATE {t} SET password_hash = $2, generation = generation + 1"
            f" WHERE id = $1 RETURNING {_USER_COLUMNS}"
        )
        self._upgrade_hash = (
            f"UPDATE {t} SET password_hash = $3 WHERE id = $1 AND password_hash = $2"
            f" RETURNING {_USER_COLUMNS}"
        )
        # Readable, and writable: a read-write transaction that is given an id.
        self._ping = (
            f"SELECT (SELECT count(*) FROM (SELECT FROM {t} LIMIT 1) AS probe) >= 0"
            " AND current_setting('transaction_read_only') = 'off'"
            " AND pg_current_xact_id() IS NOT NULL"
        )

    async def get(self, user_id: str) -> User | None:
        if not _storable(user_id):
            return None
        return await self._user(self._get, user_id)

    async def by_username(self, username: str) -> User | None:
        key = username_key(username)
        if not _storable(key):  # a name no registration accepts: nobody has it
            return None
        return await self._user(self._by_name, key)

    async def create(self, username: str, password_hash: str) -> User:
        user = User(id=self.new_id(), username=username, password_hash=password_hash)
        created = datetime.fromisoformat(user.created)
        with unavailable_as_503("the user store"):
            claimed = await self.table.run(
                lambda c: c.fetchval(
                    self._create,
                    user.id,
                    username,
                    username_key(username),
                    password_hash,
                    created,
                )
            )
        if claimed is None:
            raise UsernameTaken(username)
        return user

    async def set_password_hash(self, user_id: str, password_hash: str) -> User | None:
        return await self._user(self._set_hash, user_id, password_hash)

    async def upgrade_password_hash(
        self, user_id: str, old_hash: str, new_hash: str
    ) -> User | None:
        return await self._user(self._upgrade_hash, user_id, old_hash, new_hash)

    async def ping(self) -> bool:
        """The table reads, and the database takes writes (not read-only, not a standby)."""
        try:
            with unavailable_as_503("the user store"):
                return bool(await self.table.run(lambda c: c.fetchval(self._ping)))
        except AuthUnavailable:
            return False

    async def _user(self, statement: str, *args: str) -> User | None:
        with unavailable_as_503("the user store"):
            row = await self.table.run(lambda c: c.fetchrow(statement, *args))
        return None if row is None else _user_of(row)


def _user_of(row: asyncpg.Record) -> User:
    created = row["created"]
    return User(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        created="" if created is None else created.astimezone(UTC).isoformat(timespec="seconds"),
        generation=row["generation"],
    )


def _storable(text: str) -> bool:
    """Whether PostgreSQL's text can hold ``text``: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class FileUserStore(UserStore):
    """Users in one JSON file, rewritten atomically and locked across processes.

    Example::

        users = FileUserStore(Path(app.instance_path) / "users.json")
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    async def get(self, user_id: str) -> User | None:
        data = await self._read()
        record = data["users"].get(user_id)
        return None if record is None else User.from_json(record)

    async def by_username(self, username: str) -> User | None:
        data = await self._read()
        user_id = data["names"].get(username_key(username))
        record = None if user_id is None else data["users"].get(user_id)
        return None if record is None else User.from_json(record)

    async def create(self, username: str, password_hash: str) -> User:
        user = User(id=self.new_id(), username=username, password_hash=password_hash)

        def change(data: dict[str, Any]) -> bool:
            key = username_key(username)
            if key in data["names"]:
                return False
            data["names"][key] = user.id
            data["users"][user.id] = user.to_json()
            return True

        if not await self._update(change):
            raise UsernameTaken(username)
        return user

    async def set_password_hash(self, user_id: str, password_hash: str) -> User | None:
        return await self._change_hash(user_id, password_hash, None)

    async def upgrade_password_hash(
        self, user_id: str, old_hash: str, new_hash: str
    ) -> User | None:
        return await self._change_hash(user_id, new_hash, old_hash)

    async def _change_hash(
        self, user_id: str, password_hash: str, expected: str | None
    ) -> User | None:
        updated: list[User] = []

        def change(data: dict[str, Any]) -> bool:
            record = data["users"].get(user_id)
            if record is None:
                return False
            if expected is None:
                record["generation"] = int(record.get("generation") or 0) + 1
            elif record.get("password_hash") != expected:
                return False
            record["password_hash"] = password_hash
            updated.append(User.from_json(record))
            return True

        await self._update(change)
        return updated[0] if updated else None

    async def ping(self) -> bool:
        """The file reads, and its folder takes a small write (a full or read-only disk does not)."""
        try:
            await self._read()
            await self._io(self._probe_write)
        except AuthUnavailable:
            return False
        return True

    def _probe_write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=".probe.") as probe:
            probe.write(b"1")
            probe.flush()
            os.fsync(probe.fileno())

    async def _read(self) -> dict[str, Any]:
        return await self._io(self._read_sync)

    async def _update(self, change: Callable[[dict[str, Any]], bool]) -> bool:
        def run() -> bool:
            with self._locked():
                data = self._read_sync()
                if not change(data):
                    return False
                self._write_sync(data)
                return True

        return await self._io(run)

    @staticmethod
    async def _io(func: Callable[[], T]) -> T:
        with unavailable_as_503("the user file"):
            return await asyncio.to_thread(func)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock on a side file: the data file itself is replaced on every write.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_sync(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {"users": {}, "names": {}}
        if not isinstance(data, dict):
            raise OSError(f"{self.path} does not hold a user table")
        data.setdefault("users", {})
        data.setdefault("names", {})
        return data

    def _write_sync(self, data: dict[str, Any]) -> None:
        # Write a sibling temp file, fsync it, then rename: readers see the old or the new file.
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
