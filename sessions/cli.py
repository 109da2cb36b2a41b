"""`quart sessions …`: look after the session store from the command line."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click
from quart.cli import AppGroup, ScriptInfo

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = ["sessions_cli"]

sessions_cli = AppGroup("sessions", help="Inspect and clean the session store.")


def _store(context: click.Context) -> Store:
    # Not with_appcontext: that runs the command inside an event loop, and ours run their own.
    app = context.ensure_object(ScriptInfo).load_app()
    extension = app.extensions.get("sessions")
    if extension is None or extension.store is None:
        raise click.ClickException("this app does not use the sessions extension")
    store: Store = extension.store
    return store


@sessions_cli.command("stats")
@click.pass_context
def stats(context: click.Context) -> None:
    """Print how many sessions the store holds."""
    store = _store(context)
    count = asyncio.run(store.length())
    click.echo(f"{type(store).__name__}: {count} session(s)")


@sessions_cli.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def clear(context: click.Context, yes: bool) -> None:
    """Delete every session (everyone is signed out)."""
    if not yes:
        click.confirm("Delete every session?", abort=True)
    asyncio.run(_store(context).clear())
    click.echo("all sessions deleted")


@sessions_cli.command("purge-expired")
@click.pass_context
def purge_expired(context: click.Context) -> None:
    """Delete expired sessions now (File and Memory stores; Redis expires keys by itself)."""
    store = _store(context)
    purge = getattr(store, "purge_expired", None)
    if purge is None:
        click.echo(f"{type(store).__name__} expires sessions by itself; nothing to do")
        return
    count = asyncio.run(purge())
    click.echo(f"{count} expired session(s) deleted")
