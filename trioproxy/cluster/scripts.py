"""The Lua scripts that make each change to the store atomic in Redis.

Each script touches only keys of one hash tag (:mod:`.keys`), so it runs on Redis Cluster too.
Expiry is Redis's: leases and heartbeats expire by ``PX``; engine slots and the heartbeat index
are sorted sets scored by expiry in milliseconds of Redis's own ``TIME``.
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "ENGINE_LOADS",
    "HEARTBEAT",
    "INSTANCES",
    "NOTE_SESSION",
    "RELEASE",
    "RENEW",
    "TAKE_ENGINE_SLOT",
]

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

CLAIM = (
    _NOW
    + """
-- KEYS: lease, fence, last. ARGV: instance id, instance record, ttl ms, channel.
-- Returns {ours (1/0), token, instance record, session}; a new lease of ours adds the last
-- owner's {token, instance record, session} when another instance noted a session (a takeover).
local held = redis.call('HMGET', KEYS[1], 'id', 'token', 'instance', 'session')
if held[1] then
  if held[1] == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, held[2], held[3], held[4]}
  end
  return {0, held[2], held[3], held[4]}
end
-- A fence counter lost with the store's data starts again from the clock in ms, above every
-- token handed out before (fewer than one claim of a channel per ms), so tokens only grow.
local token
if redis.call('EXISTS', KEYS[2]) == 1 then
  token = redis.call('INCR', KEYS[2])
else
  token = now
  redis.call('SET', KEYS[2], string.format('%d', token))
end
token = string.format('%d', token)
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'token', token, 'instance', ARGV[2],
  'channel', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local last = redis.call('HMGET', KEYS[3], 'id', 'token', 'instance', 'session')
redis.call('DEL', KEYS[3])
if last[1] and last[1] ~= ARGV[1] and last[4] then
  return {1, token, ARGV[2], false, last[2], last[3], last[4]}
end
return {1, token, ARGV[2], false}
"""
)

_IF_HELD = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
"""

RENEW = (
    _IF_HELD
    + """
-- KEYS: lease. ARGV: token, ttl ms.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

RELEASE = (
    _IF_HELD
    + """
-- KEYS: lease, last. ARGV: token.
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""
)

NOTE_SESSION = (
    _IF_HELD
    + """
-- KEYS: lease, last. ARGV: token, session record ('' for none), ms the last is kept.
-- The session is kept twice: in the lease, and in the last owner's record, which outlives the
-- lease so that a successor can end it (CLAIM).
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'session')
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[1], 'session', ARGV[2])
  local holder = redis.call('HMGET', KEYS[1], 'id', 'instance')
  redis.call('HSET', KEYS[2], 'id', holder[1], 'token', ARGV[1], 'instance', holder[2],
    'session', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""
)

TAKE_ENGINE_SLOT = (
    _NOW
    + """
-- KEYS: the engine's slots, the engines index. ARGV: channel, limit, ttl ms, engine.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local limit = tonumber(ARGV[2])
  if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
end
redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""
)

ENGINE_LOADS = (
    _NOW
    + """
-- KEYS: the engines index. ARGV: the prefix of an engine's key (same hash tag as the index).
-- Returns {engine, load, engine, load, ...}.
local loads = {}
for _, engine in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. engine
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local load = redis.call('ZCARD', key)
  if load == 0 then
    redis.call('SREM', KEYS[1], engine)
  else
    table.insert(loads, engine)
    table.insert(loads, load)
  end
end
return loads
"""
)

HEARTBEAT = (
    _NOW
    + """
-- KEYS: the instance's key, the instances index. ARGV: id, instance record, ttl ms.
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], string.format('%d', now + tonumber(ARGV[3])), ARGV[1])
return 1
"""
)

INSTANCES = (
    _NOW
    + """
-- KEYS: the instances index. ARGV: the prefix of an instance's key (same hash tag).
-- Returns the records of the instances alive.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local alive = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('GET', ARGV[1] .. id)
  if record then
    table.insert(alive, record)
  end
end
return alive
"""
)
