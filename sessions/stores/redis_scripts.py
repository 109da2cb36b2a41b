"""The Lua that runs inside Redis: the renewal of `sessions.expiry` and the merge of `sessions.record`.

Both work on the record's text, field by field, so that every byte they do not change stays as
stored (a value a Node app wrote keeps its spelling). The tests run them against the Python
references on random records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["APPLY", "LOAD", "Script"]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA-1, for EVALSHA with an EVAL fallback."""

    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


# Helpers shared by both scripts: a JSON scanner that finds the top-level members of an object
# without decoding their values, and Date.prototype.toJSON for epoch milliseconds.
_HELPERS = r"""
local function string_end(s, i)
  local j = i + 1
  while true do
    local q = string.find(s, '["\\]', j)
    if not q then return nil end
    if string.byte(s, q) == 34 then return q + 1 end
    j = q + 2
  end
end
local function space_end(s, i)
  return string.find(s, '[^ \t\r\n]', i) or (#s + 1)
end
local function value_end(s, i)
  local c = string.sub(s, i, i)
  if c == '"' then return string_end(s, i) end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local p = string.find(s, '[%[%]{}"]', j)
      if not p then return nil end
      local ch = string.sub(s, p, p)
      if ch == '"' then
        j = string_end(s, p)
        if not j then return nil end
      else
        if ch == '{' or ch == '[' then depth = depth + 1 else depth = depth - 1 end
        j = p + 1
        if depth == 0 then return j end
      end
    end
  end
  return string.find(s, '[,}%] \t\r\n]', i) or (#s + 1)
end
-- The members of the object starting at s[i]: {key_text, value_start, value_end (exclusive)}.
local function members(s, i)
  i = space_end(s, i)
  if string.sub(s, i, i) ~= '{' then return nil end
  i = space_end(s, i + 1)
  local found = {}
  if string.sub(s, i, i) == '}' then return found end
  while true do
    if string.sub(s, i, i) ~= '"' then return nil end
    local key_end = string_end(s, i)
    if not key_end then return nil end
    local colon = space_end(s, key_end)
    if string.sub(s, colon, colon) ~= ':' then return nil end
    local start = space_end(s, colon + 1)
    local stop = value_end(s, start)
    if not stop then return nil end
    found[#found + 1] = {string.sub(s, i, key_end - 1), start, stop}
    local after = space_end(s, stop)
    local ch = string.sub(s, after, after)
    if ch == '}' then return found end
    if ch ~= ',' then return nil end
    i = space_end(s, after + 1)
  end
end
local function key_of(text)
  if string.find(text, '\\', 1, true) then return cjson.decode(text) end
  return string.sub(text, 2, -2)
end
local function member(found, key)
  for _, m in ipairs(found) do
    if key_of(m[1]) == key then return m end
  end
  return nil
end
local function iso(ms)
  local seconds = math.floor(ms / 1000)
  local millis = ms - seconds * 1000
  local days = math.floor(seconds / 86400)
  local rest = seconds - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', year, month, day,
    math.floor(rest / 3600), math.floor(rest % 3600 / 60), rest % 60, millis)
end
-- The cookie's "expires" member (nil for a browser-session cookie) and "originalMaxAge" member,
-- and whether the record expired before now_iso; nil when the record has no readable cookie.
local function cookie_of(s, found, now_iso)
  local cookie = member(found, 'cookie')
  if not cookie then return nil end
  local inner = members(s, cookie[2])
  if not inner then return nil end
  local expires = member(inner, 'expires')
  if expires and string.sub(s, expires[2], expires[2]) ~= '"' then expires = nil end
  local expired = false
  if expires and expires[3] - expires[2] == 26 then
    expired = string.sub(s, expires[2] + 1, expires[3] - 2) <= now_iso
  end
  return {expires = expires, original = member(inner, 'originalMaxAge'), expired = expired}
end
-- The record under `key`, its members and its cookie; false when missing, or expired (then deleted).
local function live(key, now_iso)
  local value = redis.call('GET', key)
  if not value then return false end
  local found = members(value, 1)
  local cookie = found and cookie_of(value, found, now_iso)
  if cookie and cookie.expired then
    redis.call('DEL', key)
    return false
  end
  return value, found, cookie
end
"""

#: KEYS[1] the record; ARGV now_ms, now_iso, idle_ms, anonymous_idle_ms, renew ("1"/"0").
#: The live record (renewed when asked: cookie.expires rewritten in place, or the idle TTL restarted).
LOAD = Script(
    _HELPERS
    + r"""
local value, found, cookie = live(KEYS[1], ARGV[2])
if not value then return false end
if not cookie or ARGV[5] ~= '1' then return value end
local now = tonumber(ARGV[1])
if cookie.expires then
  local original = cookie.original and tonumber(string.sub(value, cookie.original[2], cookie.original[3] - 1))
  if not original or cookie.expires[3] - cookie.expires[2] ~= 26 then return value end
  local deadline = math.floor(now + original)
  if deadline <= now then
    redis.call('DEL', KEYS[1])
    return false
  end
  value = string.sub(value, 1, cookie.expires[2]) .. iso(deadline) .. string.sub(value, cookie.expires[3] - 1)
  redis.call('SET', KEYS[1], value, 'PX', deadline - now)
  return value
end
local idle = ARGV[3]
if ARGV[3] ~= ARGV[4] and not member(found, '_owner') then idle = ARGV[4] end
redis.call('PEXPIRE', KEYS[1], idle)
return value
"""
)

#: KEYS[1] the record; ARGV now_iso, ttl_ms ("" for none), cookie text, n, the n removed keys'
#: JSON texts, then (key JSON text, value JSON text) pairs. The merged record, or false when gone.
APPLY = Script(
    _HELPERS
    + r"""
local value, found = live(KEYS[1], ARGV[1])
if not value or not found then return false end
local removed, assigned, order = {}, {}, {}
local count = tonumber(ARGV[4])
for i = 5, 4 + count do removed[key_of(ARGV[i])] = true end
for i = 5 + count, #ARGV, 2 do
  local key = key_of(ARGV[i])
  assigned[key] = ARGV[i + 1]
  order[#order + 1] = {ARGV[i], key}
end
local out = {'{"cookie":', ARGV[3]}
for _, m in ipairs(found) do
  local key = key_of(m[1])
  if key ~= 'cookie' and not removed[key] then
    local text = assigned[key]
    if text then assigned[key] = nil else text = string.sub(value, m[2], m[3] - 1) end
    out[#out + 1] = ',' .. m[1] .. ':' .. text
  end
end
for _, pair in ipairs(order) do
  local text = assigned[pair[2]]
  if text then
    out[#out + 1] = ',' .. pair[1] .. ':' .. text
    assigned[pair[2]] = nil
  end
end
local merged = table.concat(out) .. '}'
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], merged)
else
  redis.call('SET', KEYS[1], merged, 'PX', ARGV[2])
end
return merged
"""
)
