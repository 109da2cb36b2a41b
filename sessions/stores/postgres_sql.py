"""The SQL of PostgresStore: connect-pg-simple's table, and one statement per primitive.

The statements mirror the Python references (`sessions.expiry.renew_record`,
`sessions.record.merge_record`) on the record's text, which the `json` type keeps byte for byte:
a renewal splices the new ``cookie.expires`` into the cookie, a merge rebuilds the record from
its members' exact texts. Times cross the wire as epoch milliseconds (`bigint`) and `expire` holds
them to the millisecond, as a `timestamp` without time zone in the session's TimeZone (the way
connect-pg-simple's ``to_timestamp`` writes whole seconds), so both read each other's rows.

Two kinds of record are left to the store's Python: a renewal that must rewrite the cookie of a
record that does not begin with it, and a merge into a record the server cannot rebuild exactly
(whitespace between members, a key spelled with escapes, a ``\\u0000`` escape, which PostgreSQL's
json operators refuse). Neither express nor this package writes such records.
"""

from __future__ import annotations

__all__ = ["Statements", "quote_identifier"]

#: ``9999-12-31T23:59:59.999Z`` and ``1000-01-01T00:00:00.000Z``: the instants whose ISO form
#: (4-digit years) both JavaScript's toISOString and `sessions.expiry.iso_from_ms` write alike.
LAST_ISO_MS = 253_402_300_799_999
FIRST_ISO_MS = -30_610_224_000_000

_ISO = (
    r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$"
)
_EXPIRES_VALUE = r'("expires"[ \t\n\r]*:[ \t\n\r]*)(?:"[^"]*"|null)'
_NUL = r"'\u0000'"


def quote_identifier(name: str) -> str:
    """A name as a quoted SQL identifier (`my"table` → `"my""table"`)."""
    if not name or "\x00" in name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _ts(ms: str) -> str:
    """Epoch milliseconds as a timestamptz, in integer arithmetic (exact for any year)."""
    return (
        f"((timestamp '1970-01-01' + ({ms})::bigint / 86400000 * interval '1 day'"
        f" + ({ms})::bigint % 86400000 * interval '1 millisecond') AT TIME ZONE 'UTC')"
    )


def _expire(ms: str) -> str:
    """The `expire` of a deadline in ms; NULL (never) is infinity."""
    return f"coalesce({_ts(ms)}, 'infinity')"


def _expire_ms(expire: str) -> str:
    return (
        f"CASE WHEN isfinite({expire}) THEN"
        f" (extract(epoch FROM {expire}::timestamptz) * 1000)::bigint END"
    )


def _iso_of_ms(ms: str) -> str:
    """``Date.prototype.toJSON`` of epoch milliseconds between FIRST_ISO_MS and LAST_ISO_MS."""
    return (
        f"to_char(timestamp '1970-01-01' + ({ms}) / 86400000 * interval '1 day'"
        f" + ({ms}) % 86400000 * interval '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    )


def _ms_of_iso(text: str) -> str:
    """Epoch ms of a 24-character ISO instant that is a real date (else NULL), as ms_from_iso."""
    day, month, year = (
        f"substr({text}, 9, 2)",
        f"substr({text}, 6, 2)::int",
        f"substr({text}, 1, 4)::int",
    )
    last_day = f"extract(day FROM make_date({year}, {month}, 1) + interval '1 month - 1 day')"
    return (
        f"CASE WHEN {text} ~ '{_ISO}' THEN CASE WHEN {day} <= '28' OR {last_day} >= {day}::int"
        f" THEN (extract(epoch FROM substr({text}, 1, 23)::timestamp) * 1000)::bigint END END"
    )


def _readable(sess: str) -> str:
    """`sess` for the json operators, which refuse a record holding a ``\\u0000`` escape.

    They read a copy with that escape replaced (same length, still JSON); only the cookie and
    the owner key are read from it, never written back.
    """
    return (
        f"CASE WHEN strpos({sess}::text, {_NUL}) = 0 THEN {sess}"
        f" ELSE replace({sess}::text, {_NUL}, '\\u0001')::json END"
    )


def _cookie(record: str) -> str:
    """The record's first top-level "cookie" member when it is an object (else NULL)."""
    return (
        f"(SELECT CASE WHEN json_typeof(e.value) = 'object' THEN e.value END"
        f" FROM json_each(CASE WHEN json_typeof({record}) = 'object' THEN {record} END)"
        " WITH ORDINALITY AS e(key, value, o) WHERE e.key = 'cookie' ORDER BY e.o LIMIT 1)"
    )


def _facts(sess: str) -> str:
    """One row about a record: its readable copy `r`, its first cookie object `c` (else NULL),
    that cookie's `expires` when a string, `e`, and `ms` when that is an instant.

    Each level is fenced (OFFSET 0) so that the planner computes it once: inlined, every use of a
    column would parse the record again.
    """
    return (
        f"(SELECT x.*, {_ms_of_iso('x.e')} AS ms FROM (SELECT c.r, c.c, CASE WHEN"
        " json_typeof(c.c -> 'expires') = 'string' THEN c.c ->> 'expires' END AS e"
        f" FROM (SELECT r.r, {_cookie('r.r')} AS c"
        f" FROM (SELECT {_readable(sess)} AS r OFFSET 0) AS r OFFSET 0) AS c OFFSET 0) AS x)"
    )


def _live(now: str) -> str:
    """The row `s` is alive at `now` (ms): before its `expire`, and its cookie's expiry to the ms."""
    cookie_ms = f"(SELECT f.ms FROM {_facts('s.sess')} AS f)"
    return f"s.expire > {_ts(now)} AND coalesce({cookie_ms} > {now}::bigint, true)"


def _members(sess: str) -> str:
    """The record rebuilt from its members as the server spells them (compact, canonical keys)."""
    return (
        "(SELECT '{' || coalesce(string_agg(to_json(e.key)::text || ':' || e.value::text, ','"
        f" ORDER BY e.o), '') || '}}' FROM json_each({sess}) WITH ORDINALITY AS e(key, value, o))"
    )


def _mergeable(sess: str) -> str:
    """Whether the server can merge into this record byte for byte (else the store's Python does)."""
    return (
        f"CASE WHEN strpos({sess}::text, {_NUL}) = 0 AND json_typeof({sess}) = 'object'"
        f" THEN {_members(sess)} = {sess}::text ELSE false END"
    )


# The renewal's facts about the row `s`, as `n` ($2 is now in ms).
# `ms` is the cookie's expiry; `moved` the renewed one, floor(now + originalMaxAge) in JavaScript's
# arithmetic (float8, exact for an integer literal), when it has a 24-character ISO form.
_RENEWAL = f"""SELECT n.*, CASE WHEN n.original IS NOT NULL THEN (
      SELECT CASE WHEN f BETWEEN {FIRST_ISO_MS} AND {LAST_ISO_MS} THEN f::bigint END
      FROM (SELECT CASE WHEN n.original ~ '^-?[0-9]+$' THEN floor($2::bigint + n.original::numeric)
        WHEN abs(n.original::numeric) < 1e17 THEN floor($2::bigint + n.original::float8)::numeric
        END AS f) AS d) END AS moved
  FROM (SELECT f.c IS NOT NULL AS has_cookie, f.e IS NOT NULL AS dated, f.ms,
      CASE WHEN json_typeof(f.c -> 'originalMaxAge') = 'number' THEN (f.c -> 'originalMaxAge')::text END AS original,
      length(f.c::text) AS cookie_length, starts_with(s.sess::text, '{{"cookie":{{') AS head,
      f.r -> '_owner' IS NOT NULL AS owned
    FROM {_facts("s.sess")} AS f OFFSET 0) AS n"""

_STAMPED = (
    "overlay(s.sess::text placing regexp_replace(substr(s.sess::text, 11, n.cookie_length),"
    f" '{_EXPIRES_VALUE}', '\\1\"' || {_iso_of_ms('n.moved')} || '\"') from 11 for n.cookie_length)"
)


class Statements:
    """Every statement on one table (`schema.table`, or `table` on the search path)."""

    def __init__(self, table: str, schema: str | None) -> None:
        prefix = quote_identifier(schema) + "." if schema else ""
        self.name = t = prefix + quote_identifier(table)
        self.owners = o = prefix + quote_identifier(table + "_owner")
        # connect-pg-simple's table.sql (names derived from the table's, as for "session"), and
        # the owner index beside it: its own table, so connect-pg-simple's stays as it is.
        self.create_table = (
            f'CREATE TABLE {t} ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,'
            ' "expire" timestamp(6) NOT NULL)',
            f"ALTER TABLE {t} ADD CONSTRAINT {quote_identifier(table + '_pkey')}"
            ' PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE',
            f'CREATE INDEX {quote_identifier("IDX_" + table + "_expire")} ON {t} ("expire")',
        )
        self.create_owners = (
            f"CREATE TABLE {o} (owner text NOT NULL, sid varchar NOT NULL, PRIMARY KEY (owner, sid))",
            f"CREATE INDEX {quote_identifier('IDX_' + table + '_owner_sid')} ON {o} (sid)",
        )
        self.exists = "SELECT to_regclass($1::text) IS NOT NULL"
        # $1 sid, $2 now ms, $3 idle ms, $4 anonymous idle ms. Returns the record, and whether it
        # begins with its cookie (else a renewal that must move its expiry is left to Python).
        self.renew = f"""UPDATE {t} AS s SET (sess, expire) = (
  SELECT CASE WHEN n.dated AND n.ms IS NOT NULL AND n.moved IS NOT NULL AND n.head
      THEN ({_STAMPED})::json ELSE s.sess END,
    CASE WHEN NOT n.has_cookie THEN s.expire
      WHEN NOT n.dated THEN {_ts("$2::bigint + CASE WHEN n.owned THEN $3::bigint ELSE $4::bigint END")}
      WHEN n.ms IS NULL THEN s.expire
      WHEN n.moved IS NOT NULL THEN CASE WHEN n.head THEN {_ts("n.moved")} ELSE s.expire END
      ELSE {_ts("n.ms")} END
  FROM ({_RENEWAL}) AS n)
WHERE s.sid = $1 AND {_live("$2")}
RETURNING s.sess::text, starts_with(s.sess::text, '{{"cookie":{{')"""
        self.load = f"SELECT s.sess::text FROM {t} AS s WHERE s.sid = $1 AND {_live('$2')}"
        self.load_many = (
            f"SELECT s.sid, s.sess::text FROM {t} AS s WHERE s.sid = ANY ($1::varchar[])"
            f" AND {_live('$2')}"
        )
        # $1 sid, $2 record, $3 expires ms (NULL: never).
        self.write = (
            f"INSERT INTO {t} AS s (sid, sess, expire) VALUES ($1, $2::text::json, {_expire('$3')})"
            " ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire"
        )
        # $1 sid, $2 cookie text, $3 assigned keys, $4 their JSON texts, $5 their values' texts,
        # $6 removed keys, $7 expires ms (NULL: never), $8 now ms. Kept members keep their text
        # and place (an assigned one its first occurrence's); new keys follow in assigned order,
        # but a new owner, which goes right after the cookie.
        # No row: gone, expired, or a record the store's Python merges. No CTE: PostgreSQL does
        # not recompute a materialized one when a concurrent update makes it re-evaluate the
        # row (EvalPlanQual), which would lose that update.
        self.apply = f"""UPDATE {t} AS s SET (sess, expire) = (
  SELECT ('{{"cookie":' || $2::text || coalesce(string_agg(',' || coalesce(to_json(kept.key)::text, put.kt)
      || ':' || coalesce(put.v, kept.v), ''
      ORDER BY kept.o IS NULL AND put.k = '_owner' DESC, kept.o IS NULL, coalesce(kept.o, put.o)), '') || '}}')::json,
    {_expire("$7")}
  FROM (SELECT e.key, e.value::text AS v, e.o, row_number() OVER (PARTITION BY e.key ORDER BY e.o) = 1 AS first
      FROM json_each(s.sess) WITH ORDINALITY AS e(key, value, o)
      WHERE e.key <> 'cookie' AND e.key <> ALL ($6::text[])) AS kept
  FULL JOIN unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS put(k, kt, v, o)
    ON (put.k, true) = (kept.key, kept.first))
WHERE s.sid = $1 AND {_live("$8")} AND {_mergeable("s.sess")}
RETURNING s.sess::text"""
        # The store's own merge or renewal, written only over the text it was computed from:
        # $1 sid, $2 that text, $3 the new text, $4 its expiry ms (NULL: never), $5 now ms.
        self.replace = (
            f"UPDATE {t} AS s SET sess = $3::text::json, expire = {_expire('$4')}"
            f" WHERE s.sid = $1 AND s.sess::text = $2::text AND {_live('$5')} RETURNING s.sess::text"
        )
        # Every statement that removes sessions drops their owner-index entries with them.
        self.delete = (
            f"WITH entries AS (DELETE FROM {o} WHERE sid = ANY ($1::varchar[]))"
            f" DELETE FROM {t} WHERE sid = ANY ($1::varchar[])"
        )
        # $1 the last id of the previous page ('' first), $2 page size, $3 now ms.
        self.scan = (
            f"SELECT s.sid FROM {t} AS s WHERE s.sid > $1::varchar AND {_live('$3')}"
            " ORDER BY s.sid LIMIT $2::int"
        )
        # The row's `expire` and its cookie's expiry, in epoch ms (NULL: none).
        self.deadlines = (
            f"SELECT s.sid, {_expire_ms('s.expire')}, (SELECT f.ms FROM {_facts('s.sess')} AS f)"
            f" FROM {t} AS s"
            f" WHERE s.sid = ANY ($1::varchar[]) AND {_live('$2')}"
        )
        # A batch of expired rows ($1 batch size, $2 now ms), skipping rows others hold, and
        # their owner-index entries; then a batch of entries whose session is gone (a Node app
        # destroyed it, say).
        self.prune = f"""WITH gone AS (DELETE FROM {t} WHERE sid IN (SELECT sid FROM {t}
    WHERE expire <= {_ts("$2")} LIMIT $1::int FOR UPDATE SKIP LOCKED) RETURNING sid),
  entries AS (DELETE FROM {o} WHERE sid IN (SELECT sid FROM gone))
SELECT count(*) FROM gone"""
        self.prune_owners = (
            f"WITH gone AS (DELETE FROM {o} WHERE (owner, sid) IN (SELECT i.owner, i.sid FROM {o} AS i"
            f" WHERE NOT EXISTS (SELECT FROM {t} AS s WHERE s.sid = i.sid) LIMIT $1::int) RETURNING 1)"
            " SELECT count(*) FROM gone"
        )
        # One pruner per table across every instance: a session-level advisory lock.
        lock_key = "hashtextextended('sessions prune ' || $1::text, 0)"
        self.try_lock = f"SELECT pg_try_advisory_lock({lock_key})"
        self.unlock = f"SELECT pg_advisory_unlock({lock_key})"
        self.index_add = f"INSERT INTO {o} (owner, sid) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        self.index_remove = f"DELETE FROM {o} WHERE owner = $1 AND sid = ANY ($2::varchar[])"
        self.index_members = f"SELECT sid FROM {o} WHERE owner = $1 ORDER BY sid"
        # Readable, and writable: a read-write transaction that is given an id (which a standby,
        # or a read-only database, refuses).
        self.ping = (
            f"SELECT (SELECT count(*) FROM (SELECT FROM {t} LIMIT 1) AS probe) >= 0"
            " AND current_setting('transaction_read_only') = 'off'"
            " AND pg_current_xact_id() IS NOT NULL"
        )
        setup_key = "hashtextextended('sessions setup ' || $1::text, 0)"
        self.setup_lock = f"SELECT pg_advisory_xact_lock({setup_key})"
