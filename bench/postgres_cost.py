"""What a stack's requests cost PostgreSQL: statements, their µs, and the cluster's CPU.

pg_stat_statements gives, per statement, the calls and the time spent executing them; with
``track = all`` it counts statements run inside functions apart (not top level), so top-level
calls are the round trips the app made (asyncpg sends a statement it has prepared on the
connection, which its statement cache does on first use, as one Bind/Execute/Sync). The CPU of
the postmaster's process tree from /proc adds what pg_stat_statements leaves out: parsing,
planning, the protocol, commits and WAL, autovacuum.

Statements are named after the attribute of `sessions.stores.postgres_sql.Statements` they
come from (`renew`, `apply`, ...), matched by their words: pg_stat_statements replaces literals
with placeholders, so only identifiers and keywords are compared. A statement the store does
not send is named by its verb and table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from bench.postgres_server import PrivatePostgres
from bench.store_cost import StoreSnapshot, Traffic

_LITERALS = re.compile(r"'(?:[^']|'')*'|\$\d+|\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
# EXTRACT(day FROM x) is parsed as extract('day', x): the field becomes a placeholder.
_EXTRACT_FIELD = re.compile(r"(\bextract\s*\(\s*)[A-Za-z]+(\s+from\b)", re.IGNORECASE)
# Constants pg_stat_statements replaces with placeholders too.
_CONSTANT_WORDS = frozenset({"true", "false", "null"})
_TARGET = re.compile(r'\b(?:UPDATE|INTO|FROM)\s+("[^"]+"|[\w.]+)', re.IGNORECASE)

# What the statements a request may send do (the others are setup and maintenance).
MEANINGS = {
    "renew": "UPDATE … RETURNING: the read, which renews the expiry and returns the record",
    "load": "SELECT: a read without renewal",
    "apply": "UPDATE … RETURNING: the change merged into the row on the server",
    "replace": "UPDATE … RETURNING: a merge computed in Python, written over the text it read",
    "write": "INSERT … ON CONFLICT DO UPDATE: a whole record (a new session)",
    "delete": "DELETE: destroyed sessions and their owner-index entries",
    "index_add": "INSERT: an owner-index entry",
}


def fingerprint(query: str) -> tuple[str, ...]:
    """The statement's words, without literals or placeholders, lower case."""
    words = _WORDS.findall(_LITERALS.sub(" ", _EXTRACT_FIELD.sub(r"\1\2", query)))
    return tuple(word.lower() for word in words if word.lower() not in _CONSTANT_WORDS)


@cache
def _store_statements(table: str) -> dict[tuple[str, ...], str]:
    """Fingerprint -> name of every statement PostgresStore sends on `table`."""
    try:
        from sessions.stores.postgres_sql import Statements
    except ImportError as error:  # the stack fails with what to update, the run goes on
        raise RuntimeError(
            f"sessions.stores.postgres_sql.Statements is gone ({error}): update "
            "bench/postgres_cost.py, which names the store's statements after it"
        ) from error

    known: dict[tuple[str, ...], str] = {}
    for name, value in vars(Statements(table, None)).items():
        texts = [value] if isinstance(value, str) else list(value)
        for index, text in enumerate(texts):
            if isinstance(text, str) and " " in text:
                known[fingerprint(text)] = name if len(texts) == 1 else f"{name}[{index}]"
    return known


def statement_name(query: str, table: str = "session") -> str:
    """`renew`, `apply`, ... for the store's statements; else the verb and table."""
    known = _store_statements(table).get(fingerprint(query))
    if known is not None:
        return known
    verb = query.split(None, 1)[0].upper() if query.strip() else "?"
    target = _TARGET.search(query)
    return f"{verb} {target.group(1)}" if target and verb != "SELECT" else verb


@dataclass(frozen=True)
class PostgresProbe:
    """One stack's database on the private PostgreSQL; the CPU is the whole cluster's."""

    postgres: PrivatePostgres
    database: str

    def _counts(self) -> tuple[Counter[str], Counter[str], dict[str, float]]:
        """(top-level calls, nested calls, exec µs), by statement name, since start."""
        top: Counter[str] = Counter()
        nested: Counter[str] = Counter()
        usec: dict[str, float] = {}
        for (query, toplevel), (calls, ms) in self.postgres.statements(self.database).items():
            name = statement_name(query)
            (top if toplevel else nested)[name] += calls
            usec[name] = usec.get(name, 0.0) + 1000.0 * ms
        return top, nested, usec

    def snapshot(self) -> StoreSnapshot:
        top, nested, usec = self._counts()
        return StoreSnapshot(dict(top + nested), usec, self.postgres.cpu_seconds())

    def traffic(self, requests: int, send: Callable[[], object]) -> Traffic:
        """Statements per request over `requests` sequential requests: top level, and nested."""
        top_before, nested_before, _ = self._counts()
        for _ in range(requests):
            send()
        top_after, nested_after, _ = self._counts()
        return Traffic(
            requests,
            {name: count / requests for name, count in sorted((top_after - top_before).items())},
            {
                name: count / requests
                for name, count in sorted((nested_after - nested_before).items())
            },
        )
