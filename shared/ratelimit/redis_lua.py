"""The Redis backend's Lua scripts (GCRA over every budget of a request in one round trip).

State of a bucket is one hash: ``t`` theoretical arrival time, ``w`` soft booking of deferred
requests, ``b`` blocked until, ``f``/``fa`` AIMD factor and when it was set, ``li``/``lu``/``lr``
learned pacing interval, until when and the provider's remaining, ``d`` deferred, ``a`` allowed,
``s`` strikes, and for the admin view ``n`` name, ``l`` level, ``lim``, ``win``, ``cap``, ``iv``.
A fair budget adds a sorted set of active tenants and one hash per tenant's share.
"""

from __future__ import annotations

ACQUIRE = r"""
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local recover = tonumber(ARGV[2])
local fair_burst = tonumber(ARGV[3])
local fair_min = tonumber(ARGV[4])
local fair_intervals = tonumber(ARGV[5])
local requests = cjson.decode(ARGV[6])
local reserve = tonumber(ARGV[7])
local k = 1
local out = {}

-- per request, 6 values: allowed, retry_at, bucket, remaining, fair, strikes of its first budget's key
local function decide(req)
  local tenant, high, cost, budgets = req[1], req[2] == 0, req[3], req[4]
  local charges = {}
  local worst, worst_key, worst_owner, worst_interval, worst_wait, worst_fair = 0, nil, nil, 0, 0, false
  local remaining = -1
  local first_key = KEYS[k]
  for _, b in ipairs(budgets) do
    local interval, cap, low, fair = b[1], b[2], b[3], b[4] == 1 and tenant ~= ''
    local key = KEYS[k]
    k = k + 1
    local zkey, fkey
    if b[4] == 1 then
      zkey = KEYS[k]
      fkey = KEYS[k + 1]
      k = k + 2
    end
    local active = 0
    if fair then  -- every asking tenant counts, allowed or not
      local count = redis.call('ZCARD', zkey)
      if count < 1 then count = 1 end
      local horizon = math.max(fair_min, fair_intervals * interval * count)
      redis.call('ZADD', zkey, now, tenant)
      redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - horizon)
      redis.call('PEXPIRE', zkey, math.ceil(horizon * 1000) + 60000)
      active = redis.call('ZCARD', zkey)
    end
    local s = redis.call('HMGET', key, 't', 'b', 'f', 'fa', 'li', 'lu', 'w', 'iv', 'lim', 'lc')
    local blocked = tonumber(s[2]) or 0
    if blocked > now then
      if blocked > worst then
        worst, worst_key, worst_owner, worst_interval, worst_fair = blocked, key, key, 0, false
      end
    elseif interval > 0 then
      local factor = tonumber(s[3]) or 1
      if factor < 1 then
        factor = factor + (now - (tonumber(s[4]) or now)) * (b[9] or recover)
        if factor > 1 then factor = 1 end
        interval = interval / factor
      end
      local li = tonumber(s[5]) or 0
      local lu = tonumber(s[6]) or 0
      if lu > now and li > interval then interval = li end
      local capacity = low
      if high then capacity = cap end
      local lc = tonumber(s[10]) or 0
      if lu > now and lc > 0 and lc < cap then  -- a learned allowance: the burst is at most half of it
        capacity = lc
        if not high and lc >= 2 then
          capacity = lc - math.ceil(lc * reserve)
          if capacity < 1 then capacity = 1 end
        end
      end
      local tat = tonumber(s[1]) or 0
      if tat < now then tat = now end
      local new_tat = tat + interval * cost
      local allow_at = new_tat - capacity * interval
      if allow_at > now + 0.000001 then
        if allow_at > worst then
          worst, worst_key, worst_owner, worst_interval, worst_fair = allow_at, key, key, interval, false
          worst_wait = tonumber(s[7]) or 0
        end
      else
        local same = tonumber(s[8]) == b[1] and tonumber(s[9]) == b[5]
        charges[#charges + 1] = {key, new_tat, b, same}
        local left = (now - allow_at) / interval
        if remaining < 0 or left < remaining then remaining = left end
        if fair then
          local share = interval * active
          local fs = redis.call('HMGET', fkey, 't', 'w')
          local ft = tonumber(fs[1]) or 0
          if ft < now then ft = now end
          local fnew = ft + share * cost
          local fburst = fair_burst
          if high then fburst = fair_burst + 1 end
          local fat = fnew - fburst * share
          if fat > now + 0.000001 then
            if fat > worst then
              worst, worst_key, worst_owner, worst_interval, worst_fair = fat, fkey, key, share, true
              worst_wait = tonumber(fs[2]) or 0
            end
          else
            charges[#charges + 1] = {fkey, fnew, nil}
          end
        end
      end
    end
  end
  if worst_key then
    redis.call('HINCRBY', worst_owner, 'd', 1)
    if worst_interval > 0 then
      if worst_wait > worst then worst = worst_wait end
      redis.call('HSET', worst_key, 'w', string.format('%.6f', worst + worst_interval))
      redis.call('PEXPIRE', worst_key, math.ceil((worst - now) * 1000) + 3600000)
    end
    out[#out + 1] = 0
    out[#out + 1] = string.format('%.6f', worst)
    out[#out + 1] = worst_owner
    out[#out + 1] = 0
    out[#out + 1] = worst_fair and 1 or 0
    out[#out + 1] = tonumber(redis.call('HGET', first_key, 's')) or 0
    return
  end
  for _, c in ipairs(charges) do
    local m = c[3]
    if m and c[4] then
      redis.call('HSET', c[1], 't', string.format('%.6f', c[2]))
      redis.call('HINCRBY', c[1], 'a', 1)
      redis.call('PEXPIRE', c[1], math.ceil((c[2] - now + 2 * m[6]) * 1000) + 60000)
    elseif m then
      redis.call('HSET', c[1], 't', string.format('%.6f', c[2]), 'lim', m[5], 'win', m[6], 'n', m[7], 'l', m[8],
        'cap', m[2], 'iv', string.format('%.17g', m[1]))
      redis.call('HINCRBY', c[1], 'a', 1)
      redis.call('PEXPIRE', c[1], math.ceil((c[2] - now + 2 * m[6]) * 1000) + 60000)
    else
      redis.call('HSET', c[1], 't', string.format('%.6f', c[2]))
      redis.call('PEXPIRE', c[1], math.ceil((c[2] - now) * 1000) + 3600000)
    end
  end
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = 1
  out[#out + 1] = '0'
  out[#out + 1] = ''
  out[#out + 1] = math.floor(remaining)
  out[#out + 1] = 0
  out[#out + 1] = tonumber(redis.call('HGET', first_key, 's')) or 0
end

for _, req in ipairs(requests) do decide(req) end
return out
"""

BLOCK = r"""
local block_at = tonumber(ARGV[1])
local b = tonumber(redis.call('HGET', KEYS[1], 'b')) or 0
if block_at > b then
  redis.call('HSET', KEYS[1], 'b', string.format('%.6f', block_at))
  local t = redis.call('TIME')
  local ttl = math.ceil((block_at - tonumber(t[1])) * 1000) + 3600000
  if ttl > redis.call('PTTL', KEYS[1]) then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 1
"""

PENALIZE = r"""
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local decrease, floor = tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  local recover = tonumber(ARGV[3 + i])
  local s = redis.call('HMGET', key, 'f', 'fa')
  local f = tonumber(s[1]) or 1
  if f < 1 then
    f = f + (now - (tonumber(s[2]) or now)) * recover
    if f > 1 then f = 1 end
  end
  f = f * decrease
  if f < floor then f = floor end
  redis.call('HSET', key, 'f', string.format('%.6f', f), 'fa', string.format('%.6f', now))
  redis.call('PEXPIRE', key, 3600000 * 24)
end
return 1
"""

LEARN = r"""
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local remaining, reset_at, kept = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cap, base = tonumber(ARGV[5]), tonumber(ARGV[6])
local key = KEYS[1]
local usable = remaining - kept
if remaining < 0 then remaining = 0 end
redis.call('HSET', key, 'lr', string.format('%.6f', remaining), 'lu', string.format('%.6f', reset_at))
if usable < 1 then
  local b = tonumber(redis.call('HGET', key, 'b')) or 0
  if reset_at > b then redis.call('HSET', key, 'b', string.format('%.6f', reset_at)) end
else
  local tokens = math.floor(usable / 2)
  if tokens < 1 then tokens = 1 end
  if tokens > cap then tokens = cap end
  local span = reset_at - now
  if span < 0 then span = 0 end
  local left = usable - tokens
  if left < 1 then left = 1 end
  redis.call('HSET', key, 'li', string.format('%.17g', span / left), 'lc', string.format('%.17g', tokens))
end
local ttl = math.ceil((reset_at - now) * 1000) + 3600000
if ttl > redis.call('PTTL', key) then redis.call('PEXPIRE', key, ttl) end
return 1
"""
