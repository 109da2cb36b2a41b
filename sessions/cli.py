"""`quart sessions …`: look after the session store from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click
from quart.cli import AppGroup, ScriptInfo

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = ["sessions_cli"]

T = TypeVar("T")

sessions_cli = AppGroup("sessions", help="Inspect and clean the session store.")


def _store(context: click.Context) -> Store:
    # Not with_appcontext: that runs the command inside an event loop, and ours run their own.
    app = context.ensure_object(ScriptInfo).load_app()
    extension = app.extensions.get("sessions")
    if extension is None or extension.store is None:
        raise click.ClickException("this app does not use the sessions extension")
    store: Store = extension.store
    if not store.shared:
        raise click.ClickException(
            f"{type(store).__name__} keeps sessions in the memory of each server process; "
            "this command runs in a process of its own and cannot see them"
        )
    return store


async def _run_and_close(store: Store, work: Coroutine[Any, Any, T]) -> T:
    try:
        return await work
    finally:
        await store.close()


@sessions_cli.command("stats")
@click.pass_context
def stats(context: click.Context) -> None:
    """Print how many sessions the store holds."""
    store = _store(context)
    count = asyncio.run(_run_and_close(store, store.length()))
    click.echo(f"{type(store).__name__}: {count} session(s)")


@sessions_cli.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def clear(context: click.Context, yes: bool) -> None:
    """Delete every session (everyone is signed out)."""
    store = _store(context)
    if not yes:
        click.confirm("Delete every session?", abort=True)
    asyncio.run(_run_and_close(store, store.clear()))
    click.echo("all sessions deleted")


@sessions_cli.command("purge-expired")
@click.pass_context
def purge_expired(context: click.Context) -> None:
    """Delete expired sessions now (stores that expire records themselves, like Redis, report 0)."""
    store = _store(context)
    count = asyncio.run(_run_and_close(store, store.purge_expired()))
    click.echo(f"{count} expired session(s) deleted")
