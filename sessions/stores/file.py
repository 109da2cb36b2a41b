"""FileStore: one file per session in a folder; atomic, multi-process safe, optionally encrypted."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreUnavailable
from .base import TTL, Store

__all__ = ["FileStore"]

logger = logging.getLogger("sessions")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NEVER = float(2**33)  # an mtime far in the future stands for "no expiry"
_ENCRYPTED = b"\x00enc1"
_LOCK_STRIPES = 64


class FileStore(Store):
    """Sessions as `<id>.json` files; the file's mtime is its expiry time.

    ::

        Sessions(app, store=FileStore(app.instance_path + "/sessions", secret=os.environ["STORE_KEY"]))

    Writes go to a temporary file renamed into place, so a reader never sees half a record, even
    when a process dies mid-write. Compare-and-set writes hold an flock, so several processes can
    share the folder. With `secret`, records are encrypted at rest (AES-256-GCM, bound to the id).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: TTL = 86400,
        secret: str | bytes | None = None,
        reap_interval: float = 600.0,
    ) -> None:
        super().__init__(ttl=ttl)
        self.path = Path(path)
        self._owners = self.path / ".owners"
        self._locks = self.path / ".locks"
        for folder in (self.path, self._owners, self._locks):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._cipher = None
        if secret:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            key = secret.encode() if isinstance(secret, str) else secret
            derived = HKDF(hashes.SHA256(), 32, salt=None, info=b"sessions FileStore").derive(key)
            self._cipher = AESGCM(derived)
        self._reap_interval = reap_interval
        self._next_reap = time.time() + reap_interval

    @staticmethod
    def _name(sid: str) -> str:
        if _PLAIN_ID.fullmatch(sid):
            return sid + ".json"
        # Any other id (a custom genid's "/foo", say) is encoded so it cannot leave the folder.
        encoded = base64.urlsafe_b64encode(sid.encode()).decode().rstrip("=")
        if len(encoded) > 240:
            raise ValueError("FileStore keeps ids of up to 180 bytes (file names are limited)")
        return "~" + encoded + ".json"

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

    def _file(self, sid: str) -> Path:
        return self.path / self._name(sid)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = int(hashlib.blake2s(key.encode(), digest_size=2).hexdigest(), 16) % _LOCK_STRIPES
        with open(self._locks / f"{stripe:02d}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _seal(self, sid: str, raw: bytes) -> bytes:
        if self._cipher is None:
            return raw
        nonce = secrets.token_bytes(12)
        return _ENCRYPTED + nonce + self._cipher.encrypt(nonce, raw, sid.encode())

    def _open(self, sid: str, stored: bytes) -> bytes | None:
        if self._cipher is None:
            return stored or None
        from cryptography.exceptions import InvalidTag

        if not stored.startswith(_ENCRYPTED):
            logger.warning(
                "session file %s… is not encrypted with this store's secret; ignored", sid[:6]
            )
            return None
        nonce, sealed = (
            stored[len(_ENCRYPTED) : len(_ENCRYPTED) + 12],
            stored[len(_ENCRYPTED) + 12 :],
        )
        try:
            return self._cipher.decrypt(nonce, sealed, sid.encode())
        except InvalidTag:
            logger.warning(
                "session file %s… failed authentication (wrong secret or tampered); ignored",
                sid[:6],
            )
            return None

    def _load(self, sid: str) -> bytes | None:
        path = self._file(sid)
        try:
            with open(path, "rb") as handle:
                if os.fstat(handle.fileno()).st_mtime <= time.time():
                    return None
                stored = handle.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreUnavailable(f"session folder: {error}") from error
        return self._open(sid, stored)

    def _save(self, sid: str, raw: bytes, ttl: int | None) -> None:
        final = self._file(sid)
        temporary = self.path / f".{os.getpid()}.{secrets.token_hex(8)}.tmp"
        now = time.time()
        try:
            with open(temporary, "wb") as handle:
                handle.write(self._seal(sid, raw))
            os.utime(temporary, (now, _NEVER if ttl is None else now + ttl))
            os.replace(temporary, final)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise StoreUnavailable(f"session folder: {error}") from error
        if now >= self._next_reap:
            self._next_reap = now + self._reap_interval
            self.reap()

    async def read(self, sid: str) -> bytes | None:
        return self._load(sid)

    # Writes run in a thread: ext4 flushes a file's data when it is renamed over another one
    # (about 1 ms here), and the event loop should keep serving other requests meanwhile.
    async def write(self, sid: str, raw: bytes, ttl: int | None) -> None:
        await asyncio.to_thread(self._save, sid, raw, ttl)

    async def replace(
        self, sid: str, expected: bytes, raw: bytes, ttl: int | None
    ) -> bool | bytes | None:
        return await asyncio.to_thread(self._replace, sid, expected, raw, ttl)

    def _replace(
        self, sid: str, expected: bytes, raw: bytes, ttl: int | None
    ) -> bool | bytes | None:
        with self._locked(sid):
            current = self._load(sid)
            if current is None or current != expected:
                return current
            self._save(sid, raw, ttl)
            return True

    async def remove(self, *sids: str) -> None:
        for sid in sids:
            self._file(sid).unlink(missing_ok=True)

    async def expire(self, sid: str, ttl: int | None) -> None:
        now = time.time()
        try:
            os.utime(self._file(sid), (now, _NEVER if ttl is None else now + ttl))
        except FileNotFoundError:
            pass

    def _entries(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        with os.scandir(self.path) as entries:
            for entry in entries:
                sid = self._sid(entry.name)
                if sid is not None:
                    yield sid, entry

    async def scan(self) -> list[str]:
        now = time.time()
        found = []
        for sid, entry in self._entries():
            try:
                if entry.stat().st_mtime > now:
                    found.append(sid)
            except FileNotFoundError:
                continue
        return found

    async def read_many(self, sids: Sequence[str]) -> list[bytes | None]:
        return [self._load(sid) for sid in sids]

    async def remaining(self, sids: Sequence[str]) -> list[float | None]:
        now = time.time()
        result: list[float | None] = []
        for sid in sids:
            try:
                mtime = self._file(sid).stat().st_mtime
            except FileNotFoundError:
                result.append(None)
                continue
            result.append(None if mtime >= _NEVER else max(mtime - now, 0.0))
        return result

    def reap(self) -> int:
        """Delete expired session files and stale temporary files; returns how many sessions."""
        now, reaped = time.time(), 0
        for _sid, entry in list(self._entries()):
            try:
                if entry.stat().st_mtime <= now:
                    Path(entry.path).unlink(missing_ok=True)
                    reaped += 1
            except FileNotFoundError:
                continue
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.name.endswith(".tmp") and entry.stat().st_mtime < now - 3600:
                    Path(entry.path).unlink(missing_ok=True)
        return reaped

    async def purge_expired(self) -> int:
        """`reap` for the CLI: delete expired sessions now."""
        return self.reap()

    def _owner_file(self, owner: str) -> Path:
        return self._owners / (hashlib.sha256(owner.encode()).hexdigest() + ".ids")

    async def index_add(self, owner: str, sid: str) -> None:
        # Appends of one short line are atomic (O_APPEND), so no lock is needed to add.
        with open(self._owner_file(owner), "ab") as handle:
            handle.write(sid.encode() + b"\n")

    async def index_remove(self, owner: str, *sids: str) -> None:
        path = self._owner_file(owner)
        with self._locked("owner:" + owner):
            members = [m for m in self._members(path) if m not in sids]
            if not members:
                path.unlink(missing_ok=True)
                return
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes("".join(m + "\n" for m in members).encode())
            os.replace(temporary, path)

    @staticmethod
    def _members(path: Path) -> list[str]:
        try:
            lines = path.read_bytes().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return sorted({line for line in lines if line})

    async def index_members(self, owner: str) -> list[str]:
        return self._members(self._owner_file(owner))
