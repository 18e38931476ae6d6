-- serde-toast's Redis update script: rewrites records whose `SET … NX`
-- found the key taken.
--
-- KEYS: those keys. ARGV[1]: TTL in ms (0: none); ARGV[i + 1]: the new
-- value of KEYS[i]. First checks every key (and writes nothing if one is not
-- a toast record), then writes each new value with the old `created_at`
-- spliced in (bytes 7-14, Lua's 1-based positions of offset 6..14); a key
-- that vanished since the `SET … NX` is written as it is.
local created = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local head = redis.pcall('GETRANGE', k, 0, 25)
  if type(head) == 'table' then
    local t = redis.call('TYPE', k)['ok']
    return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds a ' .. t .. ', not a toast record (a string starting with byte 0xF7); nothing of this update was written')
  end
  if #head == 0 then
    if redis.call('EXISTS', k) == 1 then
      return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds an empty string, not a toast record; nothing of this update was written')
    end
    created[i] = false
  elseif #head < 26 or string.byte(head, 1) ~= 247 or string.byte(head, 2) ~= 1 then
    return redis.error_reply('WRONGTYPE toast: key ' .. k .. ' holds a string that is not a toast record (layout 1: first bytes 0xF7 0x01, at least 26 bytes); nothing of this update was written')
  else
    created[i] = string.sub(head, 7, 14)
  end
end
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  local v = ARGV[i + 1]
  if created[i] then
    v = string.sub(v, 1, 6) .. created[i] .. string.sub(v, 15)
  end
  if ttl > 0 then
    redis.call('SET', KEYS[i], v, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], v)
  end
end
return #KEYS
