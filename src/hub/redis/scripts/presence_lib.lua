-- The presence scripts' common part. KEYS: this server's users in the topic (a
-- set), every server's count per user (a hash), each user's metadata (a hash), the
-- topic's presence version. ARGV[1] channel, ARGV[2] "1" for sharded pub/sub,
-- ARGV[3] the keys' time to live in ms. A change is published as
-- `p1\nVERSION\nJ|L\nLEN\nUSER` then, for a join, "1" and the metadata or "0". The
-- version starts from Redis's clock in microseconds, so that it keeps going up
-- when the key is gone and back.
local function version_key()
  if redis.call('EXISTS', KEYS[4]) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[4], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
  end
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
local function announce(kind, user, meta)
  version_key()
  local v = redis.call('INCR', KEYS[4])
  local env = 'p1\n' .. string.format('%d', v) .. '\n' .. kind .. '\n' .. string.len(user) .. '\n' .. user .. meta
  if ARGV[2] == '1' then redis.call('SPUBLISH', ARGV[1], env) else redis.call('PUBLISH', ARGV[1], env) end
end
local function leave(user)
  local n = redis.call('HINCRBY', KEYS[2], user, -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('HDEL', KEYS[3], user)
    announce('L', user, '')
  end
end
