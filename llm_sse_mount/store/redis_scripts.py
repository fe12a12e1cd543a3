"""The Lua scripts of the Redis stream store (see :mod:`.redis` for the keys they touch).

Each runs atomically on the stream's own keys, which share one Redis Cluster slot.
"""

__all__ = ["APPEND", "CREATE", "HEARTBEAT"]

# KEYS: frames, meta, lease, readers
# ARGV: running_ttl_ms, done_ttl_ms, ends (0/1), max_frames, now, only_if_lost (0/1),
#       stop (0/1), e1, d1, ...
# Returns the seq of the last frame written, or: -1 unknown stream, -2 already done,
# -3 too long, -4 (only_if_lost) the producer still holds its lease, -5 already stopped.
APPEND = """
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -4 end
local meta = redis.call('HMGET', KEYS[2], 'last', 'done', 'stopped')
if not meta[1] then return -1 end
if meta[2] == '1' then
  if meta[3] == '1' then return -5 end
  return -2
end
local last = tonumber(meta[1])
local n = (#ARGV - 7) / 2
if ARGV[3] == '0' and last + 1 + n > tonumber(ARGV[4]) then return -3 end
for i = 0, n - 1 do
  last = last + 1
  redis.call('XADD', KEYS[1], '0-' .. (last + 1), 'e', ARGV[8 + 2 * i], 'd', ARGV[9 + 2 * i])
end
local ttl = ARGV[1]
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], 'last', last, 'done', 1, 'end', ARGV[5], 'stopped', ARGV[7])
  redis.call('DEL', KEYS[3])
  ttl = ARGV[2]
else
  redis.call('HSET', KEYS[2], 'last', last)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[4], ttl)
return last
"""

# KEYS: meta, lease; ARGV: lease token, lease_ms, running_ttl_ms, owner ('' for none)
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'last', -1, 'done', 0, 'owner', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: meta, lease, frames, readers; ARGV: lease token, lease_ms, running_ttl_ms
# Only a running stream is refreshed: a finished one keeps its retention expiry.
HEARTBEAT = """
if redis.call('HGET', KEYS[1], 'done') ~= '0' then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return 1
"""
