-- Who is present, and the version that says so; and where the topic's
-- publications stand (the subscription's starting point). KEYS as
-- presence_lib.lua's, then the topic's epoch and offset. Returns {version, {user,
-- has metadata, metadata, ...}, epoch, offset}.
version_key()
local version = redis.call('GET', KEYS[4])
local out = {}
for _, user in ipairs(redis.call('HKEYS', KEYS[2])) do
  local meta = redis.call('HGET', KEYS[3], user)
  table.insert(out, user)
  if meta then table.insert(out, '1'); table.insert(out, meta) else table.insert(out, '0'); table.insert(out, '') end
end
return {version, out, redis.call('GET', KEYS[5]) or '', tonumber(redis.call('GET', KEYS[6]) or '0')}
