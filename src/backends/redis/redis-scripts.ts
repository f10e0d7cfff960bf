import { CLAIMABLE_STATUSES, FINAL_STATUSES, STATUSES, STATUS_TABLE, type Status } from "../../core/status.js";

/**
 * The Lua scripts of the Redis backend: every write that touches an invocation is one of these,
 * run atomically on the server. They only store and compare-and-set; which statuses are claimable,
 * final or acquired by a claim is generated from core's STATUS_TABLE when the text is built.
 *
 * Conventions shared by all scripts:
 * - KEYS[1] is the app's key prefix (its hash tag routes the call); keys are built from it.
 * - ARGV[1] is a call token ('' for none), ARGV[2] a comma-separated list of tokens whose replies
 *   the client has received. A tokenized script stores its reply under done:<token> and answers a
 *   repeat of the same token with it, so a call the driver resends after a reconnect (its first
 *   reply lost with the connection) is applied once. Acknowledged tokens are deleted.
 * - A nullable string arrives as '' for null and '=' .. value otherwise.
 * - Numbers travel as decimal strings and are compared as strings; arithmetic results are formatted
 *   with %.17g, which reads back to the same JavaScript number.
 */

/** How long a call's reply is kept for a resend when its client never acknowledges it. */
const DONE_TTL_MS = 24 * 60 * 60 * 1000;

/** The status a new invocation starts in (the port's contract for register). */
const REGISTERED: Status = "REGISTERED";

function acquiredStatus(): Status {
  const acquiring = STATUSES.filter((s) => STATUS_TABLE[s].acquires === true);
  if (acquiring.length !== 1 || !acquiring[0]) throw new Error("the status table must have exactly one status a claim enters");
  return acquiring[0];
}

function luaSet(statuses: readonly Status[]): string {
  return `{${statuses.map((s) => `${s} = true`).join(", ")}}`;
}

const PRELUDE = `
local P = KEYS[1]
local CLAIMABLE = ${luaSet(CLAIMABLE_STATUSES)}
local FINAL = ${luaSet(FINAL_STATUSES)}
local ACQUIRED = '${acquiredStatus()}'
local REGISTERED = '${REGISTERED}'
local function num(x) return string.format('%.17g', x) end
local function member(seq, id) return string.format('%016d', tonumber(seq)) .. id end
local function nullable(v) if v == '' then return nil end return string.sub(v, 2) end
local function forget(acks)
  for t in string.gmatch(acks, '[^,]+') do redis.call('UNLINK', P .. 'done:' .. t) end
end
local function remember(token, reply)
  if token ~= '' then redis.call('SET', P .. 'done:' .. token, reply, 'PX', ${DONE_TTL_MS}) end
end
local function prior(token)
  if token == '' then return nil end
  return redis.call('GET', P .. 'done:' .. token)
end
local function move(id, seq, from, to)
  if from == to then return end
  if from then redis.call('ZREM', P .. 'status:' .. from, id) end
  redis.call('ZADD', P .. 'status:' .. to, seq, id)
end
local function wake() redis.call('PUBLISH', P .. 'wake', '1') end
forget(ARGV[2])
`;

/**
 * register: ARGV[3..] = 7 per invocation: id, taskId, callId, args, parentId (nullable), createdAt,
 * readyAt. All or none: fails before writing anything if one exists.
 */
const REGISTER = `
local done = prior(ARGV[1])
if done then return done end
local n = (#ARGV - 2) / 7
for i = 0, n - 1 do
  local id = ARGV[3 + i * 7]
  if redis.call('EXISTS', P .. 'inv:' .. id) == 1 then
    return redis.error_reply('invocation ' .. id .. ' already exists')
  end
end
local last = redis.call('INCRBY', P .. 'seq', n)
for i = 0, n - 1 do
  local b = 3 + i * 7
  local id, createdAt, readyAt = ARGV[b], ARGV[b + 5], ARGV[b + 6]
  local seq = last - n + 1 + i
  local k = P .. 'inv:' .. id
  redis.call('HSET', k, 'taskId', ARGV[b + 1], 'callId', ARGV[b + 2], 'args', ARGV[b + 3], 'status', REGISTERED,
    'attempt', '0', 'retries', '0', 'createdAt', createdAt, 'updatedAt', createdAt, 'seq', seq)
  local parent = nullable(ARGV[b + 4])
  if parent then redis.call('HSET', k, 'parentId', parent) end
  if CLAIMABLE[REGISTERED] then
    redis.call('HSET', k, 'readyAt', readyAt)
    redis.call('ZADD', P .. 'ready', readyAt, member(seq, id))
  end
  redis.call('ZADD', P .. 'status:' .. REGISTERED, seq, id)
  redis.call('RPUSH', P .. 'hist:' .. id, REGISTERED .. '|' .. createdAt .. '|0|')
end
if n > 0 then wake() end
remember(ARGV[1], 'OK')
return 'OK'
`;

/**
 * claim: ARGV[3] runnerId, ARGV[4] max, ARGV[5] now, ARGV[6..] tokens of earlier claims by this
 * runner whose replies were lost. Their invocations still held at the claimed attempt are handed
 * out again first, then up to max in all are claimed from the ready set, oldest readyAt first.
 * A runner that is unknown, stopped or dead claims nothing.
 * Reply: 6 strings per invocation: id, taskId, args, attempt, retries, parentId ('' for none).
 */
const CLAIM = `
local token, runner, max, now = ARGV[1], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out, ledger = {}, {}
local function hand(id, taskId, args, attempt, retries, parent)
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] = id, taskId, args, attempt, retries, parent or ''
  ledger[#ledger + 1] = id
  ledger[#ledger + 1] = attempt
end
local function redeliver(t)
  local v = redis.call('GET', P .. 'done:' .. t)
  if not v then return false end
  local list = cjson.decode(v)
  for i = 1, #list, 2 do
    local id, attempt = list[i], list[i + 1]
    local r = redis.call('HMGET', P .. 'inv:' .. id, 'status', 'owner', 'attempt', 'taskId', 'args', 'retries', 'parentId')
    if r[1] == ACQUIRED and r[2] == runner and r[3] == attempt then hand(id, r[4], r[5], attempt, r[6], r[7]) end
  end
  return true
end
local live = redis.call('HMGET', P .. 'runner:' .. runner, 'heartbeatAt', 'stoppedAt', 'deadAt')
if not live[1] or live[2] or live[3] then return out end
if token ~= '' and redeliver(token) then return out end
for i = 6, #ARGV do
  redeliver(ARGV[i])
  redis.call('UNLINK', P .. 'done:' .. ARGV[i])
end
local want = max - #out / 6
if want > 0 then
  local ready = P .. 'ready'
  local members = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, want)
  if #members > 0 then redis.call('ZREMRANGEBYRANK', ready, 0, #members - 1) end
  for _, m in ipairs(members) do
    local id = string.sub(m, 17)
    local k = P .. 'inv:' .. id
    local r = redis.call('HMGET', k, 'status', 'attempt', 'taskId', 'args', 'retries', 'parentId', 'seq')
    if r[1] and CLAIMABLE[r[1]] then
      local attempt = num(tonumber(r[2]) + 1)
      redis.call('HSET', k, 'status', ACQUIRED, 'owner', runner, 'attempt', attempt, 'updatedAt', now)
      redis.call('HDEL', k, 'readyAt')
      move(id, r[7], r[1], ACQUIRED)
      redis.call('RPUSH', P .. 'hist:' .. id, ACQUIRED .. '|' .. now .. '|' .. attempt .. '|' .. runner)
      hand(id, r[3], r[4], attempt, r[5], r[6])
    end
  end
end
if #ledger > 0 then remember(token, cjson.encode(ledger)) end
return out
`;

/**
 * transition: ARGV[3..] = 13 per request: id, expect.status, expect.attempt, expect.owner ('*' for
 * any, else nullable), to, owner (nullable), attempt, readyAt ('' for null), at, by (nullable),
 * result (nullable), error (nullable), retries ('' to keep). Applied in order, each only if its
 * expectation holds. Reply: one '1' or '0' per request.
 */
const TRANSITION = `
local done = prior(ARGV[1])
if done then return done end
local applied, woke = {}, false
for b = 3, #ARGV, 13 do
  local id, es, ea, eo, to = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local k = P .. 'inv:' .. id
  local r = redis.call('HMGET', k, 'status', 'attempt', 'owner', 'seq')
  local holds = r[1] == es and r[2] == ea and
    (eo == '*' or (eo == '' and not r[3]) or (r[3] ~= false and eo == '=' .. r[3]))
  if holds then
    local owner, readyAt, at, by = nullable(ARGV[b + 5]), ARGV[b + 7], ARGV[b + 8], nullable(ARGV[b + 9])
    local attempt = ARGV[b + 6]
    local set = {'status', to, 'attempt', attempt, 'updatedAt', at}
    local del = {}
    if owner then set[#set + 1] = 'owner'; set[#set + 1] = owner else del[#del + 1] = 'owner' end
    if readyAt ~= '' then set[#set + 1] = 'readyAt'; set[#set + 1] = readyAt else del[#del + 1] = 'readyAt' end
    local result, err, retries = nullable(ARGV[b + 10]), nullable(ARGV[b + 11]), ARGV[b + 12]
    if result then set[#set + 1] = 'result'; set[#set + 1] = result end
    if err then set[#set + 1] = 'error'; set[#set + 1] = err end
    if retries ~= '' then set[#set + 1] = 'retries'; set[#set + 1] = retries end
    redis.call('HSET', k, unpack(set))
    if #del > 0 then redis.call('HDEL', k, unpack(del)) end
    if CLAIMABLE[to] then
      redis.call('ZADD', P .. 'ready', readyAt ~= '' and readyAt or '+inf', member(r[4], id))
    elseif CLAIMABLE[r[1]] then
      redis.call('ZREM', P .. 'ready', member(r[4], id))
    end
    move(id, r[4], r[1], to)
    redis.call('RPUSH', P .. 'hist:' .. id, to .. '|' .. at .. '|' .. attempt .. '|' .. (by or ''))
    applied[#applied + 1] = '1'
    if CLAIMABLE[to] or FINAL[to] then woke = true end
  else
    applied[#applied + 1] = '0'
  end
end
local reply = table.concat(applied)
if woke then wake() end
remember(ARGV[1], reply)
return reply
`;

/** appendLogs: ARGV[3..] = 4 per line: invocationId, attempt, runnerId, the line as JSON. Reply: lines stored. */
const APPEND_LOGS = `
local done = prior(ARGV[1])
if done then return tonumber(done) end
local stored = 0
for b = 3, #ARGV, 4 do
  local id = ARGV[b]
  local r = redis.call('HMGET', P .. 'inv:' .. id, 'attempt', 'owner')
  if r[1] == ARGV[b + 1] and r[2] == ARGV[b + 2] then
    redis.call('RPUSH', P .. 'logs:' .. id, ARGV[b + 3])
    stored = stored + 1
  end
end
remember(ARGV[1], stored)
return stored
`;

/** registerRunner: ARGV[3] id, ARGV[4..] field/value pairs of the new record (replaces any old one). */
const REGISTER_RUNNER = `
local id = ARGV[3]
local k = P .. 'runner:' .. id
redis.call('DEL', k)
redis.call('HSET', k, unpack(ARGV, 4))
redis.call('SADD', P .. 'runners', id)
return 1
`;

/** heartbeat: ARGV[3] id, ARGV[4] now. 0 when the runner is unknown, stopped or dead. */
const HEARTBEAT = `
local k = P .. 'runner:' .. ARGV[3]
local r = redis.call('HMGET', k, 'heartbeatAt', 'stoppedAt', 'deadAt')
if not r[1] or r[2] or r[3] then return 0 end
if tonumber(ARGV[4]) > tonumber(r[1]) then redis.call('HSET', k, 'heartbeatAt', ARGV[4]) end
return 1
`;

/** retireRunners: ARGV[3] 'stoppedAt' or 'deadAt', ARGV[4] now, ARGV[5..] ids. Keeps an earlier time. */
const RETIRE_RUNNERS = `
for i = 5, #ARGV do
  local k = P .. 'runner:' .. ARGV[i]
  if redis.call('EXISTS', k) == 1 then redis.call('HSETNX', k, ARGV[3], ARGV[4]) end
end
return 1
`;

/** acquireLease: ARGV[3] name, ARGV[4] holder, ARGV[5] now, ARGV[6] ttl, ARGV[7] replacing (nullable). */
const ACQUIRE_LEASE = `
local k = P .. 'lease:' .. ARGV[3]
local holder, now = ARGV[4], tonumber(ARGV[5])
local replacing = nullable(ARGV[7])
local l = redis.call('HMGET', k, 'holder', 'expiresAt')
if l[1] and l[1] ~= holder and l[1] ~= replacing and tonumber(l[2]) > now then return 0 end
redis.call('HSET', k, 'holder', holder, 'expiresAt', num(now + tonumber(ARGV[6])))
return 1
`;

/** releaseLease: ARGV[3] name, ARGV[4] holder. */
const RELEASE_LEASE = `
local k = P .. 'lease:' .. ARGV[3]
if redis.call('HGET', k, 'holder') == ARGV[4] then redis.call('DEL', k) end
return 1
`;

export const SCRIPTS = {
  nencRegister: REGISTER,
  nencClaim: CLAIM,
  nencTransition: TRANSITION,
  nencAppendLogs: APPEND_LOGS,
  nencRegisterRunner: REGISTER_RUNNER,
  nencHeartbeat: HEARTBEAT,
  nencRetireRunners: RETIRE_RUNNERS,
  nencAcquireLease: ACQUIRE_LEASE,
  nencReleaseLease: RELEASE_LEASE,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The full text of a script as loaded on the server: the shared prelude, then its body. */
export function scriptText(name: ScriptName): string {
  return PRELUDE + SCRIPTS[name];
}
