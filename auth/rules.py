"""Registration rules for usernames and passwords."""

from __future__ import annotations

import re
import threading

from .passwords import normalize
from .users import username_key

__all__ = ["USERNAME_RULE", "guessability_error", "password_errors", "username_errors"]

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME_RULE = (
    f"{USERNAME_MIN} to {USERNAME_MAX} characters: letters, digits and . _ -, "
    "starting and ending with a letter or digit"
)
_USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")

#: zxcvbn's own ceiling: its matching grows faster than linearly (55 ms of CPU at 72 characters
#: here), so a longer password is judged by its first 72 characters.
ESTIMATED_LENGTH = 72
# zxcvbn keeps the user inputs of a call in a module-level dictionary: one call at a time.
_ZXCVBN_LOCK = threading.Lock()


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
    password: str,
    username: str,
    *,
    min_length: int = 8,
    max_length: int = 1024,
    min_score: int = 3,
) -> list[str]:
    """Why ``password`` (in its NFKC form) is not acceptable for ``username`` (empty when it is).

    Costs up to ~55 ms of CPU (the strength estimate): call it off the event loop.
    """
    password = normalize(password)
    if len(password) < min_length:
        return [f"Use at least {min_length} characters."]
    if len(password) > max_length:
        return [f"Use at most {max_length} characters."]
    if not password.strip():
        return ["A password cannot be only spaces."]
    if username and username_key(password) == username_key(username):
        return ["The password must not be your username."]
    if problem := guessability_error(password, username, min_score):
        return [problem]
    return []


def guessability_error(password: str, username: str, min_score: int) -> str | None:
    """Why zxcvbn finds ``password`` too easy to guess (score below ``min_score``), or ``None``.

    zxcvbn's score counts guesses against its lists (30,000 most common passwords, English
    words, names, keyboard patterns, dates, l33t and repeats): 2 is under 10^8 guesses,
    3 under 10^10 ("moderate protection from an offline slow-hash attack").
    """
    from zxcvbn import zxcvbn  # 34 ms to import and 18 MB: only in processes that register users

    inputs = [username] if username else []
    with _ZXCVBN_LOCK:
        result = zxcvbn(password[:ESTIMATED_LENGTH], user_inputs=inputs)
    if result["score"] >= min_score:
        return None
    feedback = result["feedback"]
    hints = [
        feedback["warning"],
        *feedback["suggestions"][:1],
    ]  # the first suggestion is the key one
    details = " ".join(hint.rstrip(".") + "." for hint in hints if hint)
    return f"This password is too common or too easy to guess. {details}".strip()
