"""Flash messages with a bound, so unread ones cannot grow a session without limit."""

from __future__ import annotations

from typing import Any

from quart import flash as _quart_flash

from sessions import session

__all__ = ["MAX_FLASHES", "flash"]

#: Unread messages kept per session, newest last; older ones are dropped.
MAX_FLASHES = 4
#: Longest message kept, in characters.
MAX_FLASH_LENGTH = 300
_KEY = "_flashes"  # where quart.flash keeps them


async def flash(message: str, category: str = "message") -> None:
    """``quart.flash`` for messages a visitor can repeat at will (a form posted again and
    again without reading the page that follows): the same message is kept once, at most
    ``MAX_FLASHES`` are kept, so no visitor can grow their session into ``SessionTooLarge``.

    Example::

        await flash("Password changed.", "success")
    """
    message = message[:MAX_FLASH_LENGTH]
    earlier: Any = session.get(_KEY)
    # Stored as JSON, a (category, message) pair comes back as a list.
    kept = [
        pair
        for pair in (earlier if isinstance(earlier, list) else [])
        if isinstance(pair, list | tuple) and len(pair) == 2 and list(pair) != [category, message]
    ]
    session[_KEY] = kept[-(MAX_FLASHES - 1) :]
    await _quart_flash(message, category)
