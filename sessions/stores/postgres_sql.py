"""The SQL of PostgresStore, on connect-pg-simple's table, one statement per primitive.

Parameters are numbered (`$1`); every one is cast where it is used so that the server needs no
type guess. Times cross the wire as epoch milliseconds (`bigint`) and an ISO-8601 text of "now"
(the application's clock, as connect-pg-simple passes its own); `expire` is written as
connect-pg-simple writes it: ``to_timestamp(ceil(ms / 1000))`` into `timestamp(6)` without time
zone, i.e. in the session's TimeZone, and compared back through the same conversion.

`sess` is `json`, which keeps the record's text byte for byte: the renewal splices the 24
characters of ``cookie.expires`` into that text, and the merge rebuilds the object from
``json_each`` (key order and the exact text of each value kept).
"""

from __future__ import annotations

import time

__all__ = ["Statements", "iso_from_ms", "json_now", "quote_identifier"]

# A JavaScript Date's toISOString() for years 0001-9999; text order is time order (collation "C").
_ISO = (
    r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$"
)
_LAST_ISO_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def iso_from_ms(ms: int) -> str:
    """``2026-11-29T13:53:21.123Z`` for epoch milliseconds, as ``Date.prototype.toJSON``."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def json_now(ms: int) -> str:
    """The JSON text of an instant (`"2026-…Z"`), as the statements' `now` parameter."""
    return f'"{iso_from_ms(ms)}"'


def quote_identifier(name: str) -> str:
    """A name as a quoted SQL identifier (`my"table` → `"my""table"`)."""
    if not name or "\x00" in name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _readable(sess: str) -> str:
    """`sess` for PostgreSQL's json operators, which refuse a record holding a \\u0000 escape.

    The json type stores such a record (JSON.stringify writes one for a NUL character), but the
    operators cannot unescape it to text; they read a copy with that escape replaced. Only what
    the statements inspect (the cookie, the "_owner" key) is read from it: the record written
    back is always the stored text.
    """
    return (
        f"(CASE WHEN strpos({sess}::text, '\\u0000') = 0 THEN {sess}"
        f" ELSE replace({sess}::text, '\\u0000', '\\u0001')::json END)"
    )


_S = _readable("s.sess")


def _live(now_ms: str, now_iso: str) -> str:
    """The row `s` is alive at that moment: its `expire`, and its cookie's expiry to the ms.

    `now_iso` is the JSON text of now (quoted): a cookie's `expires` is compared as JSON text,
    extracted once per use, a non-string one (null) leaving the row to its `expire`.
    """
    expires = f"({_S} -> 'cookie' -> 'expires')::text"
    return (
        f"s.expire > to_timestamp({now_ms}::bigint / 1000.0)"
        f" AND coalesce({expires} !~ '^\"'"
        f' OR ({expires} ~ \'^"{_ISO[1:-1]}"$\' AND {expires} COLLATE "C" > {now_iso}::text), true)'
    )


def _expire(ms: str) -> str:
    """connect-pg-simple's `expire`: whole seconds rounded up; NULL ms (never) is infinity."""
    return f"coalesce(to_timestamp(ceil({ms}::bigint / 1000.0)), 'infinity')"


# The renewal's new cookie.expires: floor(now + originalMaxAge) as JavaScript's Date computes it
# (float8), when originalMaxAge is a plain decimal (as JSON.stringify writes any duration under
# 1e21 ms) and the result fits the 24-character ISO form; NULL otherwise (no renewal).
_RENEWED_MS = f"""CASE WHEN j.at > 0 AND j.m ~ '^-?[0-9]{{1,15}}(\\.[0-9]{{1,20}})?$' THEN
    (SELECT CASE WHEN f BETWEEN 0 AND {_LAST_ISO_MS} THEN f::bigint END
     FROM (SELECT floor($2::bigint + j.m::float8) AS f) AS x) END"""

_ISO_OF_MS = (
    "to_char(date '1970-01-01' + (k.ms / 86400000)::int + (k.ms % 86400000) * interval '1 millisecond',"
    ' \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
)


class Statements:
    """Every statement of one table (`schema.table`, or the search path's `table`)."""

    def __init__(self, table: str, schema: str | None) -> None:
        self.name = (quote_identifier(schema) + "." if schema else "") + quote_identifier(table)
        t = self.name
        # connect-pg-simple's table.sql, created only when missing (its createTableIfMissing).
        self.create_table = (
            f'CREATE TABLE IF NOT EXISTS {t} ("sid" varchar NOT NULL COLLATE "default",'
            f' "sess" json NOT NULL, "expire" timestamp(6) NOT NULL,'
            f' CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE)',
            f'CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON {t} ("expire")',
        )
        live = _live("$2", "$3")
        # $1 sid, $2 now ms, $3 now ISO, $4 idle ms (owned), $5 idle ms (anonymous).
        # Where the 24 characters of cookie.expires start (0: no string expiry, or a record that
        # does not begin with its cookie, as every record express or we write does).
        at = (
            "CASE WHEN starts_with(s.sess::text, '{\"cookie\":{')"
            f" AND json_typeof({_S} -> 'cookie' -> 'expires') = 'string'"
            ' THEN strpos(s.sess::text, \'"expires":"\') + 11 ELSE 0 END'
        )
        self.renew = f"""UPDATE {t} AS s SET (sess, expire) = (
  SELECT CASE WHEN k.ms IS NULL THEN s.sess ELSE overlay(k.t placing {_ISO_OF_MS} from k.at for 24)::json END,
    CASE WHEN k.ms IS NOT NULL THEN to_timestamp(ceil(k.ms / 1000.0)) WHEN k.at > 0 THEN s.expire
      ELSE to_timestamp(ceil(($2::bigint + CASE WHEN {_S} -> '_owner' IS NULL THEN $5::bigint ELSE $4::bigint END) / 1000.0)) END
  FROM (SELECT j.t, j.at, {_RENEWED_MS} AS ms
    FROM (SELECT s.sess::text AS t, ({_S} -> 'cookie' -> 'originalMaxAge')::text AS m, {at} AS at) AS j) AS k)
WHERE s.sid = $1 AND json_typeof({_S} -> 'cookie') = 'object' AND {live}"""
        self.load_renew = self.renew + "\nRETURNING s.sess::text"
        self.load = f"SELECT s.sess::text FROM {t} AS s WHERE s.sid = $1 AND {live}"
        self.load_many = (
            f"SELECT s.sid, s.sess::text FROM {t} AS s WHERE s.sid = ANY ($1::varchar[]) AND {live}"
        )
        # $1 sid, $2 record, $3 expires ms (NULL: never).
        self.write = (
            f"INSERT INTO {t} AS s (sid, sess, expire) VALUES ($1, $2::text::json, {_expire('$3')})"
            " ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire"
        )
        # $1 sid, $2 cookie text, $3 assigned keys, $4 their value texts, $5 removed keys,
        # $6 expires ms (NULL: never), $7 now ms, $8 now ISO. Kept keys keep their place and
        # text; assigned keys the record lacks follow in the order given.
        kept = "e.key <> 'cookie' AND e.key <> ALL ($5::text[])"
        self.apply = f"""UPDATE {t} AS s SET sess = (
  SELECT ('{{"cookie":' || $2::text || coalesce(string_agg(',' || to_json(m.k)::text || ':' || m.v, '' ORDER BY m.g, m.o), '') || '}}')::json
  FROM (SELECT 0 AS g, e.o, e.key AS k, coalesce(a.v, e.value::text) AS v
      FROM json_each(s.sess) WITH ORDINALITY AS e(key, value, o)
      LEFT JOIN unnest($3::text[], $4::text[]) AS a(k, v) ON a.k = e.key
      WHERE {kept}
    UNION ALL
    SELECT 1, a.o, a.k, a.v FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS a(k, v, o)
      WHERE NOT EXISTS (SELECT FROM json_each(s.sess) AS e WHERE e.key = a.k AND {kept})) AS m),
  expire = {_expire("$6")}
WHERE s.sid = $1 AND json_typeof(s.sess) = 'object' AND strpos(s.sess::text, '\\u0000') = 0
  AND {_live("$7", "$8")}
RETURNING s.sess::text"""
        # A record json_each cannot read (a \\u0000 escape) is merged by the store in Python and
        # written back only if no one changed it in between: $1 sid, $2 now ms, $3 now JSON.
        self.load_unmergeable = (
            f"SELECT s.sess::text FROM {t} AS s WHERE s.sid = $1 AND json_typeof(s.sess) = 'object'"
            f" AND strpos(s.sess::text, '\\u0000') > 0 AND {_live('$2', '$3')}"
        )
        # $1 sid, $2 the text it was read with, $3 the new text, $4 expires ms (NULL: never).
        self.replace = (
            f"UPDATE {t} AS s SET sess = $3::text::json, expire = {_expire('$4')}"
            " WHERE s.sid = $1 AND s.sess::text = $2::text RETURNING s.sess::text"
        )
        self.delete = f"DELETE FROM {t} WHERE sid = ANY ($1::varchar[])"
        # $1 the last id of the previous page ('' first), $2 page size, $3 now ms, $4 now JSON.
        self.scan = (
            f"SELECT s.sid FROM {t} AS s WHERE s.sid > $1::text AND {_live('$3', '$4')}"
            " ORDER BY s.sid LIMIT $2::int"
        )
        # The cookie's expiry (JSON text) and `expire` in epoch ms (NULL: infinity).
        self.deadlines = (
            f"SELECT s.sid, ({_S} -> 'cookie' -> 'expires')::text, CASE WHEN isfinite(s.expire)"
            " THEN (extract(epoch FROM s.expire::timestamptz) * 1000)::bigint END"
            f" FROM {t} AS s WHERE s.sid = ANY ($1::varchar[]) AND {_live('$2', '$3')}"
        )
        # Batches of expired rows: rows another statement holds are skipped, not waited for.
        self.prune = (
            f"DELETE FROM {t} WHERE sid IN (SELECT sid FROM {t}"
            " WHERE expire < to_timestamp($1::bigint / 1000.0) LIMIT $2::int FOR UPDATE SKIP LOCKED)"
        )
        # One pruner per table across every instance: a session-level advisory lock.
        lock_key = "hashtextextended('sessions prune ' || $1::text, 0)"
        self.try_lock = f"SELECT pg_try_advisory_lock({lock_key})"
        self.unlock = f"SELECT pg_advisory_unlock({lock_key})"
        # The owner index: an expression index on the record's "_owner" (no companion table).
        # Its expression reads `sess` as the statements do: a record Node stores with a NUL in it
        # must not make the insert fail.
        owner = f"({_readable('sess')} ->> '_owner')"
        self.create_owner_index = (
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "IDX_session_owner" ON {t}'
            f" ({owner}) WHERE {owner} IS NOT NULL"
        )
        self.owned = f"SELECT sid FROM {t} WHERE {owner} = $1::text"
        # Readable, and writable: a read-write transaction that is given an id (which a standby,
        # or a server that cannot write its WAL, refuses).
        self.ping = (
            f"SELECT (SELECT count(*) FROM (SELECT FROM {t} LIMIT 1) AS probe) >= 0"
            " AND current_setting('transaction_read_only') = 'off'"
            " AND pg_current_xact_id() IS NOT NULL"
        )
        self.setup_lock = (
            "SELECT pg_advisory_lock(hashtextextended('sessions setup ' || $1::text, 0))"
        )
        self.setup_unlock = (
            "SELECT pg_advisory_unlock(hashtextextended('sessions setup ' || $1::text, 0))"
        )
