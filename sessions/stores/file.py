"""FileStore: one file per session in a folder; atomic, multi-process safe, optionally encrypted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import StoreUnavailable
from ..expiry import Renewal, effective_deadline, now_ms, renew_record, with_expiry
from ..record import Change, merge_record
from .base import TTL, Store

if TYPE_CHECKING:
    from quart import Quart

__all__ = ["FileStore"]

T = TypeVar("T")
logger = logging.getLogger("sessions")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NEVER_MS = 2**33 * 1000  # an mtime far in the future stands for "no expiry"
_ENCRYPTED = b"\x00enc1"
_LOCK_STRIPES = 64
_STALE_TEMPORARY_MS = 3600 * 1000


def _failure(error: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"session folder: {error}")


class FileStore(Store):
    """Sessions as `<id>.json` files in one folder; a file's mtime is its record's expiry.

    ::

        Sessions(app, store=FileStore("sessions", secret=os.environ["STORE_KEY"]))

    A relative folder is taken inside the app's instance folder, so it does not depend on the
    directory the server was started from. Writes go to a temporary file renamed into place (a
    reader never sees half a record, even when a process dies mid-write); merges and deletes hold an
    flock, so several processes can share the folder. With `secret`, records are encrypted at rest
    (AES-256-GCM bound to the id). Expired files are purged in a background thread.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: TTL = 86400,
        secret: str | bytes | None = None,
        purge_interval: float = 600.0,
    ) -> None:
        super().__init__(ttl=ttl)
        self.path = Path(path)
        self._cipher = _cipher(secret) if secret else None
        self._purge_interval_ms = int(purge_interval * 1000)
        self._next_purge = now_ms() + self._purge_interval_ms
        self._purging: asyncio.Future[int] | None = None
        self._ready = False

    def attach(self, app: Quart) -> None:
        if not self.path.is_absolute():
            self.path = Path(app.instance_path) / self.path

    # ------------------------------------------------------------------ files

    def _folder(self) -> Path:
        if not self._ready:
            for folder in (self.path, self.path / ".owners", self.path / ".locks"):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._ready = True
        return self.path

    def _file(self, sid: str) -> Path:
        if _PLAIN_ID.fullmatch(sid):
            return self._folder() / (sid + ".json")
        # Any other id (a custom genid's "/foo", say) is encoded so that it cannot leave the folder.
        encoded = base64.urlsafe_b64encode(sid.encode()).decode().rstrip("=")
        if len(encoded) > 240:
            raise ValueError("FileStore keeps ids of up to 180 bytes (file names are limited)")
        return self._folder() / ("~" + encoded + ".json")

    @staticmethod
    def _sid(name: str) -> str | None:
        if not name.endswith(".json") or name.startswith("."):
            return None
        stem = name[:-5]
        if not stem.startswith("~"):
            return stem
        try:
            return base64.urlsafe_b64decode(stem[1:] + "=" * (-len(stem[1:]) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = int(hashlib.blake2s(key.encode(), digest_size=2).hexdigest(), 16) % _LOCK_STRIPES
        with open(self._folder() / ".locks" / f"{stripe:02d}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, sid: str, renew: Renewal | None) -> bytes | None:
        """The live record, its cookie.expires stamped from the mtime; renewed in place when asked."""
        try:
            with open(self._file(sid), "rb") as handle:
                deadline = os.fstat(handle.fileno()).st_mtime_ns // 1_000_000
                at = now_ms() if renew is None else renew.now_ms
                if deadline <= at:
                    return None
                raw = self._unseal(sid, handle.read())
                if raw is None:
                    return None
                if deadline < _NEVER_MS:
                    raw = with_expiry(raw, deadline)
                if renew is None:
                    return raw
                renewed = renew_record(raw, renew)
                if renewed is None:
                    return None
                if renewed[1] is not None:
                    os.utime(handle.fileno(), ns=(at * 1_000_000, renewed[1] * 1_000_000))
                return renewed[0]
        except FileNotFoundError:
            return None

    def _save(self, sid: str, raw: bytes, expires_ms: int | None) -> None:
        final = self._file(sid)
        temporary = final.parent / f".{os.getpid()}.{secrets.token_hex(8)}.tmp"
        deadline = effective_deadline(raw, expires_ms)
        deadline = _NEVER_MS if deadline is None else deadline
        try:
            with open(temporary, "wb") as handle:
                handle.write(self._seal(sid, raw))
            os.utime(temporary, ns=(now_ms() * 1_000_000, deadline * 1_000_000))
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def _apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        with self._locked(sid):
            current = self._read(sid, None)
            if current is None:
                return None
            merged = merge_record(current, change)
            self._save(sid, merged, expires_ms)
            return merged

    def _delete(self, sids: Sequence[str]) -> None:
        for sid in sids:
            with self._locked(sid):
                self._file(sid).unlink(missing_ok=True)

    # ------------------------------------------------------------------ primitives

    async def _run(self, work: Callable[[], T], *, in_thread: bool = False) -> T:
        """Run file work (in a thread when it may block on a lock or a flush); OSError means unavailable."""
        try:
            return await asyncio.to_thread(work) if in_thread else work()
        except OSError as error:
            raise _failure(error) from error

    async def load(self, sid: str, renew: Renewal | None = None) -> bytes | None:
        return await self._run(lambda: self._read(sid, renew))

    async def load_many(self, sids: Sequence[str]) -> list[bytes | None]:
        return await self._run(lambda: [self._read(sid, None) for sid in sids])

    # Writes run in a thread: ext4 flushes a file's data when it is renamed over another one
    # (about 1 ms here), and the event loop should keep serving other requests meanwhile.
    async def write(self, sid: str, record: bytes, expires_ms: int | None) -> None:
        await self._run(lambda: self._save(sid, record, expires_ms), in_thread=True)
        self._maybe_purge()

    async def apply(self, sid: str, change: Change, expires_ms: int | None) -> bytes | None:
        merged = await self._run(lambda: self._apply(sid, change, expires_ms), in_thread=True)
        self._maybe_purge()
        return merged

    async def renew(self, sid: str, renewal: Renewal) -> None:
        await self.load(sid, renewal)

    async def delete(self, *sids: str) -> None:
        if sids:
            await self._run(lambda: self._delete(sids), in_thread=True)

    async def scan(self, batch: int = 500) -> AsyncIterator[list[str]]:
        try:
            with os.scandir(self._folder()) as entries:
                found: list[str] = []
                at = now_ms()
                for entry in entries:
                    sid = self._sid(entry.name)
                    with contextlib.suppress(FileNotFoundError):
                        if sid is not None and entry.stat().st_mtime_ns // 1_000_000 > at:
                            found.append(sid)
                    if len(found) >= batch:
                        yield found
                        found, at = [], now_ms()
                if found:
                    yield found
        except OSError as error:
            raise _failure(error) from error

    async def deadlines(self, sids: Sequence[str]) -> list[int | None]:
        def stat() -> list[int | None]:
            at, result = now_ms(), []
            for sid in sids:
                try:
                    deadline: int | None = self._file(sid).stat().st_mtime_ns // 1_000_000
                except FileNotFoundError:
                    deadline = None
                if deadline is not None and deadline <= at:
                    deadline = None
                result.append(None if deadline is None or deadline >= _NEVER_MS else deadline)
            return result

        return await self._run(stat)

    def _purge(self) -> int:
        """Delete expired files one by one, under their lock (a merge never sees one vanish midway)."""
        purged, at = 0, now_ms()
        with os.scandir(self._folder()) as entries:
            for entry in entries:
                path = Path(entry.path)
                with contextlib.suppress(FileNotFoundError):
                    if entry.name.endswith(".tmp"):
                        # Left by a process killed mid-write; ctime is when it was written.
                        if entry.stat().st_ctime_ns // 1_000_000 < at - _STALE_TEMPORARY_MS:
                            path.unlink()
                        continue
                    sid = self._sid(entry.name)
                    if sid is None or entry.stat().st_mtime_ns // 1_000_000 > at:
                        continue
                    with self._locked(sid):
                        if path.stat().st_mtime_ns // 1_000_000 <= at:
                            path.unlink()
                            purged += 1
        return purged

    async def purge_expired(self) -> int:
        return await self._run(self._purge, in_thread=True)

    def _maybe_purge(self) -> None:
        """Start a background purge when one is due; the request that triggers it does not wait."""
        at = now_ms()
        if at < self._next_purge or self._purging is not None:
            return
        self._next_purge = at + self._purge_interval_ms
        self._purging = asyncio.get_running_loop().run_in_executor(None, self._purge)
        self._purging.add_done_callback(self._purged)

    def _purged(self, future: asyncio.Future[int]) -> None:
        self._purging = None
        if not future.cancelled() and future.exception() is not None:
            logger.warning("purging expired session files failed: %s", future.exception())

    # ------------------------------------------------------------------ owners, health

    def _owner_file(self, owner: str) -> Path:
        return self._folder() / ".owners" / (hashlib.sha256(owner.encode()).hexdigest() + ".ids")

    async def index_add(self, owner: str, sid: str) -> None:
        def add() -> None:
            # Appends of one short line are atomic (O_APPEND), so no lock is needed to add.
            with open(self._owner_file(owner), "ab") as handle:
                handle.write(sid.encode() + b"\n")

        await self._run(add)

    async def index_remove(self, owner: str, *sids: str) -> None:
        def remove() -> None:
            path = self._owner_file(owner)
            with self._locked("owner:" + owner):
                members = [m for m in _members(path) if m not in sids]
                if not members:
                    path.unlink(missing_ok=True)
                    return
                temporary = path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_bytes("".join(m + "\n" for m in members).encode())
                os.replace(temporary, path)

        await self._run(remove, in_thread=True)

    async def index_members(self, owner: str) -> list[str]:
        return await self._run(lambda: _members(self._owner_file(owner)))

    async def ping(self) -> None:
        """Fails when the folder cannot be written: read-only, full, gone or not permitted."""

        def probe_and_clean() -> None:
            name = ".ping-" + secrets.token_hex(6)
            path = self._folder() / name
            try:
                with open(path, "wb") as handle:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                    os.fsync(handle.fileno())
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()

        await self._run(probe_and_clean, in_thread=True)

    async def close(self) -> None:
        if self._purging is not None:
            await asyncio.wait([self._purging])

    # ------------------------------------------------------------------ encryption at rest

    def _seal(self, sid: str, raw: bytes) -> bytes:
        if self._cipher is None:
            return raw
        nonce = secrets.token_bytes(12)
        sealed: bytes = self._cipher.encrypt(nonce, raw, sid.encode())
        return _ENCRYPTED + nonce + sealed

    def _unseal(self, sid: str, stored: bytes) -> bytes | None:
        if self._cipher is None:
            return stored or None
        from cryptography.exceptions import InvalidTag

        if not stored.startswith(_ENCRYPTED):
            logger.warning("session file %s… is not encrypted with this store's secret", sid[:6])
            return None
        nonce, sealed = (
            stored[len(_ENCRYPTED) : len(_ENCRYPTED) + 12],
            stored[len(_ENCRYPTED) + 12 :],
        )
        try:
            opened: bytes = self._cipher.decrypt(nonce, sealed, sid.encode())
            return opened
        except InvalidTag:
            logger.warning(
                "session file %s… failed authentication (wrong secret or tampered)", sid[:6]
            )
            return None


def _members(path: Path) -> list[str]:
    try:
        lines = path.read_bytes().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return sorted({line for line in lines if line})


def _cipher(secret: str | bytes) -> Any:
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as error:
        raise ImportError(
            "FileStore(secret=...) encrypts records with AES-GCM from the 'cryptography' package: "
            "pip install cryptography"
        ) from error
    key = secret.encode() if isinstance(secret, str) else secret
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=b"sessions FileStore").derive(key))
