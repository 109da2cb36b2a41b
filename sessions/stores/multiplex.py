"""One Redis connection shared by every request of an event loop: commands pipelined, replies in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis import exceptions as redis_errors

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis ships with redis[hiredis]
    HAVE_HIREDIS = False
else:
    HAVE_HIREDIS = True

__all__ = ["HAVE_HIREDIS", "MultiplexedConnection", "encode_command"]

# Error replies and the redis-py exception each stands for (LOADING is a ConnectionError, ...).
_REPLY_ERRORS: dict[str, type[redis_errors.RedisError]] = {
    "LOADING": redis_errors.BusyLoadingError,
    "READONLY": redis_errors.ReadOnlyError,
    "NOSCRIPT": redis_errors.NoScriptError,
    "OOM": redis_errors.OutOfMemoryError,
    "NOAUTH": redis_errors.AuthenticationError,
    "WRONGPASS": redis_errors.AuthenticationError,
    "NOPERM": redis_errors.NoPermissionError,
    "EXECABORT": redis_errors.ExecAbortError,
    "TRYAGAIN": redis_errors.TryAgainError,
    "CLUSTERDOWN": redis_errors.ClusterDownError,
    "MASTERDOWN": redis_errors.MasterDownError,
}


def encode_command(args: Sequence[Any]) -> bytes:
    """The RESP array for one command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif isinstance(arg, float):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def reply_error(message: str) -> redis_errors.RedisError:
    """The redis-py exception for an error reply."""
    code = message.split(" ", 1)[0]
    kind = _REPLY_ERRORS.get(code)
    if kind is None:
        return redis_errors.ResponseError(message)
    return kind(message[len(code) + 1 :])


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a dial's failure as seen: every request that wanted it may have given up."""
    if not task.cancelled():
        task.exception()


class _Link(asyncio.Protocol):
    """One socket: a FIFO of waiting futures, writes flushed once per loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.outgoing: list[bytes] = []
        self.closed = False
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.waiting.append((future, self.loop.time()))
        if not self.outgoing:
            # Commands issued by other requests in this loop iteration share one write.
            self.loop.call_soon(self._flush)
        self.outgoing.append(command)
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self.timeout, self._check_timeout)
        return future

    def _flush(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:
                self.fail(redis_errors.ConnectionError("Redis sent a reply nobody asked for"))
                return
            future, _ = waiting.popleft()
            if future.done():
                continue  # its caller was cancelled; the reply only had to be consumed
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(reply_error(str(reply)))
            else:
                future.set_result(reply)

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self.waiting:
            return
        due = self.waiting[0][1] + self.timeout
        if self.loop.time() >= due:
            self.fail(redis_errors.TimeoutError(f"Redis did not answer within {self.timeout} s"))
        else:
            self._watchdog = self.loop.call_at(due, self._check_timeout)

    def fail(self, error: Exception) -> None:
        """Close the socket and fail every waiting command with `error`."""
        if not self.closed:
            self.closed = True
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            if self.transport is not None:
                self.transport.abort()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis_errors.ConnectionError(f"Redis closed the connection: {exc or 'EOF'}"))


class MultiplexedConnection:
    """A lean Redis client for one event loop: every request's commands share one socket.

    Replaces a pool checkout, a socket write and a read per command with one buffered write per
    loop iteration and a hiredis parse; a cancelled caller leaves its reply to be discarded.
    `timeout` bounds every command (one watchdog per connection); a connection found dead is
    replaced once, so a restarted Redis is invisible.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 2.0,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.username, self.password, self.db = username, password, db
        self.timeout = timeout
        self._link: _Link | None = None
        self._dialling: asyncio.Task[_Link] | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> MultiplexedConnection | None:
        """For a plain `redis://` or `unix://` URL with hiredis installed; else None."""
        parts = urlsplit(url)
        if not HAVE_HIREDIS or parts.scheme not in ("redis", "unix") or parts.query:
            return None
        db_text = parts.path.strip("/") if parts.scheme == "redis" else ""
        if db_text and not db_text.isdigit():
            return None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            path=parts.path if parts.scheme == "unix" else None,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(db_text or 0),
            timeout=timeout,
        )

    async def execute(self, *args: Any) -> Any:
        """Run one command; a connection found dead is replaced once, like redis-py's retry."""
        command = encode_command(args)
        link = self._link
        if link is not None and not link.closed:
            try:
                return await link.send(command)
            except redis_errors.ConnectionError:
                if not link.closed:
                    raise  # an error reply of that class (LOADING, NOAUTH): the connection is fine
                # Lost, e.g. Redis restarted and closed it: one fresh connection is worth a try.
        link = await self._connect()
        return await link.send(command)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Several commands written together; their replies (or errors, raised) in order."""
        return list(await asyncio.gather(*(self.execute(*command) for command in commands)))

    async def scan(self, match: str, count: int) -> AsyncIterator[list[bytes]]:
        """SCAN MATCH, a batch of keys at a time."""
        cursor = b"0"
        while True:
            cursor, keys = await self.execute("SCAN", cursor, "MATCH", match, "COUNT", count)
            if keys:
                yield list(keys)
            if cursor == b"0":
                return

    async def _connect(self) -> _Link:
        loop = asyncio.get_running_loop()
        dialling = self._dialling
        if dialling is None or dialling.done():
            # Its own task, shared: requests arriving meanwhile wait for this one attempt, and
            # a cancelled request does not abort it for the others.
            dialling = self._dialling = loop.create_task(self._dial(loop))
            dialling.add_done_callback(_retrieve)
        link = await asyncio.shield(dialling)
        self._link = link
        return link

    async def _dial(self, loop: asyncio.AbstractEventLoop) -> _Link:
        def factory() -> _Link:
            return _Link(loop, self.timeout)

        try:
            if self.path is not None:
                opening = loop.create_unix_connection(factory, self.path)
            else:
                opening = loop.create_connection(factory, self.host, self.port)
            _, link = await asyncio.wait_for(opening, self.timeout)
        except (TimeoutError, OSError) as error:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {error}") from error
        try:
            if self.password is not None:
                credentials = (self.username, self.password) if self.username else (self.password,)
                await link.send(encode_command(("AUTH", *credentials)))
            if self.db:
                await link.send(encode_command(("SELECT", self.db)))
        except BaseException as error:
            link.fail(redis_errors.ConnectionError(f"Redis connection setup failed: {error}"))
            raise
        return link

    async def close(self) -> None:
        """Close the connection; waiting commands fail."""
        link, self._link = self._link, None
        if link is not None:
            link.fail(redis_errors.ConnectionError("connection closed by the client"))
