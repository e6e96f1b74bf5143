-- A live server's presence keys in a topic live on: each one that exists gets
-- ARGV[1] ms to live again. KEYS as presence_lib.lua's.
local n = 0
for _, key in ipairs(KEYS) do
  n = n + redis.call('PEXPIRE', key, ARGV[1])
end
return n
