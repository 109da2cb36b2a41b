"""Password hashing with argon2id, run off the event loop, of NFKC-normalised passwords."""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Passwords", "Verified", "normalize"]

T = TypeVar("T")

#: How much nicer than the event loop the hashing threads run (Linux): the loop wins the CPU
#: whenever it has requests to serve, and logins still progress (about a tenth of a busy core
#: per lane thread).
HASHING_NICENESS = 10


def normalize(password: str) -> str:
    """The form a password is hashed and checked in: NFKC (NIST SP 800-63B, 5.1.1.2).

    The same password typed on another keyboard or system (composed "é" or "e" plus a combining
    accent, a full-width digit) is then the same password: ``normalize("e\u0301") == "é"``.
    """
    return unicodedata.normalize("NFKC", password)


class Verified(enum.Enum):
    """The outcome of ``Passwords.verify``; true when the password is right."""

    WRONG = "wrong"
    #: Right, in the normalised form the hash was made of.
    RIGHT = "right"
    #: Right only as typed: a hash made before passwords were normalised; hash it anew.
    RIGHT_UNNORMALISED = "right, unnormalised"

    def __bool__(self) -> bool:
        return self is not Verified.WRONG


def _yield_to_the_event_loop() -> None:
    """Lower this worker thread's CPU priority; argon2's lane threads inherit it."""
    if sys.platform == "linux":  # elsewhere PRIO_PROCESS would name the whole process
        thread = threading.get_native_id()
        try:
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICENESS
            os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))
        except OSError:
            pass


class Passwords:
    """Hash and verify passwords in a small thread pool of their own.

    The default hasher is argon2-cffi's, i.e. argon2id with the RFC 9106 low-memory
    parameters (t=3, m=64 MiB, p=4).  Passwords are hashed in their NFKC form (``normalize``).
    Example::

        passwords = Passwords()
        stored = await passwords.hash("correct horse")
        assert await passwords.verify(stored, "correct horse")
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, workers: int | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        # A pool of its own: a burst of logins must not starve the default executor, which
        # the session stores may use for their file I/O. Each argon2 call already runs its
        # lanes on several threads (parallelism=4), so half the cores keeps the event loop fed.
        self._workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self._executor: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        """Return a fresh argon2 hash of ``password`` in its normalised form."""
        return await self._run(self.hasher.hash, normalize(password))

    async def verify(self, stored_hash: str | None, password: str) -> Verified:
        """Check ``password`` against ``stored_hash``: normalised first, then as typed (a hash
        made before normalisation). ``None`` (unknown user) costs what a wrong password costs."""
        normalized = normalize(password)
        candidates = [(normalized, Verified.RIGHT)]
        if password != normalized:
            candidates.append((password, Verified.RIGHT_UNNORMALISED))
        target = await self._dummy() if stored_hash is None else stored_hash
        for form, outcome in candidates:
            if await self._run(self._verify_sync, target, form) and stored_hash is not None:
                return outcome
        return Verified.WRONG

    def needs_rehash(self, stored_hash: str, verified: Verified = Verified.RIGHT) -> bool:
        """True when ``stored_hash`` was made with other parameters than the current hasher's,
        or of the unnormalised password."""
        if verified is Verified.RIGHT_UNNORMALISED:
            return True
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    def close(self) -> None:
        """Stop the worker threads (they are started again on next use)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        # Made lazily with the current parameters, so an unknown user costs a real verify.
        if self._dummy_hash is None:
            self._dummy_hash = await self._run(self.hasher.hash, secrets.token_urlsafe(24))
        return self._dummy_hash

    async def _run(self, func: Callable[..., T], *args: str) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._workers, thread_name_prefix="argon2", initializer=_yield_to_the_event_loop
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)
