"""Registration rules for usernames and passwords."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from .users import username_key

__all__ = ["USERNAME_RULE", "is_common_password", "password_errors", "username_errors"]

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME_RULE = (
    f"{USERNAME_MIN} to {USERNAME_MAX} characters: letters, digits and . _ -, "
    "starting and ending with a letter or digit"
)
_USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def username_errors(username: str) -> list[str]:
    """Why ``username`` cannot be registered: ``username_errors("ann") == []``."""
    if not username:
        return ["Choose a username."]
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        return [f"Usernames are {USERNAME_MIN} to {USERNAME_MAX} characters long."]
    if not _USERNAME.fullmatch(username):
        return ["Use only letters, digits and . _ -, starting and ending with a letter or digit."]
    return []


def password_errors(
    password: str, username: str, *, min_length: int = 8, max_length: int = 1024
) -> list[str]:
    """Why ``password`` is not acceptable for ``username`` (empty when it is)."""
    if len(password) < min_length:
        return [f"Use at least {min_length} characters."]
    if len(password) > max_length:
        return [f"Use at most {max_length} characters."]
    if username and username_key(password) == username_key(username):
        return ["The password must not be your username."]
    if is_common_password(password):
        return ["This password is too common; choose another."]
    return []


def is_common_password(password: str) -> bool:
    """True for passwords on the built-in list of the most common ones (case-insensitive)."""
    return password.casefold() in _common_passwords()


@cache
def _common_passwords() -> frozenset[str]:
    text = files("auth").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line.strip() and line[0] != "#"
    )
