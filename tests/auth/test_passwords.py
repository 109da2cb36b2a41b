"""Passwords: argon2id with RFC 9106 parameters, verified off the event loop."""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher

from auth import Passwords, Verified
from auth.passwords import HASHING_NICENESS

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def test_default_is_argon2id_with_rfc_9106_low_memory_parameters() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "Correct horse battery")
    passwords.close()


async def test_each_hash_has_its_own_salt() -> None:
    passwords = Passwords(FAST)
    assert await passwords.hash("same") != await passwords.hash("same")


async def test_unknown_user_is_verified_against_a_dummy_hash() -> None:
    passwords = Passwords(FAST)
    assert not await passwords.verify(None, "anything")
    assert passwords._dummy_hash is not None
    assert not passwords.needs_rehash(passwords._dummy_hash)


async def test_garbage_hashes_do_not_verify_and_need_a_rehash() -> None:
    passwords = Passwords(FAST)
    assert not await passwords.verify("not a hash", "anything")
    assert not await passwords.verify("$argon2id$v=19$m=8,t=1,p=1$broken", "anything")
    assert passwords.needs_rehash("not a hash")


async def test_needs_rehash_when_the_parameters_change() -> None:
    old = await Passwords(FAST).hash("secret words")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.needs_rehash(old)
    assert await stronger.verify(old, "secret words")
    assert not Passwords(FAST).needs_rehash(old)


async def test_hashing_runs_in_its_own_threads() -> None:
    seen: list[str] = []

    class Recording(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            seen.append(threading.current_thread().name)
            return super().hash(password, salt=salt)

    passwords = Passwords(Recording(time_cost=1, memory_cost=8, parallelism=1))
    await passwords.hash("secret words")
    assert seen and seen[0].startswith("argon2") and seen[0] != threading.main_thread().name


async def test_hashing_threads_run_at_a_lower_cpu_priority_than_the_event_loop() -> None:
    """Logins must not starve the loop of CPU: argon2 runs at HASHING_NICENESS, the loop at 0."""
    passwords = Passwords(FAST)

    def own_niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop_niceness = own_niceness()
    hashing_niceness = await passwords._run(lambda *_: own_niceness())
    assert hashing_niceness == min(19, loop_niceness + HASHING_NICENESS)
    assert own_niceness() == loop_niceness
    passwords.close()


async def test_passwords_are_hashed_in_their_nfkc_form() -> None:
    passwords = Passwords(FAST)
    stored = await passwords.hash("cafe\u0301 ２４")  # decomposed é, full-width digits
    assert FAST.verify(stored, "café 24")
    assert await passwords.verify(stored, "café 24") is Verified.RIGHT
    assert await passwords.verify(stored, "cafe\u0301 ２４") is Verified.RIGHT


async def test_a_hash_of_the_unnormalised_form_verifies_and_asks_for_a_rehash() -> None:
    passwords = Passwords(FAST)
    legacy = FAST.hash("cafe\u0301 ２４")
    verified = await passwords.verify(legacy, "cafe\u0301 ２４")
    assert verified is Verified.RIGHT_UNNORMALISED and verified
    assert passwords.needs_rehash(legacy, verified)
    assert not passwords.needs_rehash(legacy, Verified.RIGHT)
    assert not await passwords.verify(legacy, "café 24")


async def test_a_wrong_password_is_false_in_every_form() -> None:
    passwords = Passwords(FAST)
    stored = await passwords.hash("café 24")
    assert await passwords.verify(stored, "cafe 24") is Verified.WRONG
    assert not await passwords.verify(stored, "cafe\u0301 25")
    assert not await passwords.verify(None, "cafe\u0301 ２４")
