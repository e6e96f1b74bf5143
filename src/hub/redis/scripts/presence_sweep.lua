-- Every user of a server (a dead one, or this one at its stop) leaves.
local users = redis.call('SMEMBERS', KEYS[1])
for _, user in ipairs(users) do leave(user) end
redis.call('DEL', KEYS[1])
return #users
