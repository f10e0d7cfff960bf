import {
  CLAIMABLE_STATUSES,
  CLAIMED_STATUS,
  FINAL_STATUSES,
  STARTED_STATUS,
  STATUSES,
  STATUS_TABLE,
  type Status,
} from "../../core/status.js";

/**
 * The Lua scripts of the Redis backend: every write that touches an invocation is one of these,
 * run atomically on the server. They only store and compare-and-set; which statuses are claimable,
 * final, entered by a claim or by a claim to start is generated from core's status table when the
 * text is built.
 *
 * Conventions shared by all scripts:
 * - KEYS[1] is the app's key prefix (its hash tag routes the call); keys are built from it.
 * - ARGV[1] is a call token ('' for none), ARGV[2] a comma-separated list of tokens whose replies
 *   the client has received. A tokenized script stores its reply under done:<token> and answers a
 *   repeat of the same token with it, so a call the driver resends after a reconnect (its first
 *   reply lost with the connection) is applied once. Acknowledged tokens are deleted.
 * - A nullable string arrives as '' for null and '=' .. value otherwise. In an invocation's hash a
 *   null owner, readyAt or parentId is '' (ids and times are never empty); result and error are
 *   absent until set. Its history is in the same hash: fields h1..hn, each
 *   'status|at|attempt|runnerId', so recording it costs no command of its own.
 * - A batch (of invocations, requests or log lines) travels as one argument, a JSON array of
 *   strings decoded with cjson, and a claim's reply as one JSON string: native JSON on both sides
 *   costs far less than hundreds of separate arguments or reply elements. Register and transition
 *   batches go by columns (see rows): what every row shares is sent and decoded once.
 * - Work done per invocation is what a script costs; `npm run bench:redis-instructions` counts it.
 * - Numbers travel as decimal strings and are compared as strings; arithmetic results are formatted
 *   with %.17g, which reads back to the same JavaScript number.
 */

/** How long a call's reply is kept for a resend when its client never acknowledges it. */
const DONE_TTL_MS = 24 * 60 * 60 * 1000;

/** The status a new invocation starts in (the port's contract for register). */
const REGISTERED: Status = "REGISTERED";

function luaSet(statuses: readonly Status[]): string {
  return `{${statuses.map((s) => `${s} = true`).join(", ")}}`;
}

function luaMap(entries: readonly (readonly [string, string])[]): string {
  return `{${entries.map(([k, v]) => `${k} = '${v}'`).join(", ")}}`;
}

/**
 * Which sorted set indexes the invocations in a status (a key under the app's prefix): claimable
 * ones are the queue itself ('ready', scored by readyAt); owned ones share 'owned', so a move
 * between owned statuses touches no index; every other status has a set of its own. The last two
 * are scored by creation sequence. Listing by status reads these and filters by status.
 */
export function indexOf(status: Status): string {
  const rule = STATUS_TABLE[status];
  return rule.claimable ? "ready" : rule.owned ? "owned" : `status:${status}`;
}

// The claim script writes its index changes directly (ready set to owned set), relying on this.
if (
  !CLAIMABLE_STATUSES.every((s) => indexOf(s) === "ready") ||
  indexOf(CLAIMED_STATUS) !== "owned" ||
  indexOf(STARTED_STATUS) !== "owned"
) {
  throw new Error("the Redis claim script expects claimable statuses in the ready set and claimed ones in the owned set");
}

const PRELUDE = `
local P = KEYS[1]
local call, sub = redis.call, string.sub
local CLAIMABLE = ${luaSet(CLAIMABLE_STATUSES)}
local FINAL = ${luaSet(FINAL_STATUSES)}
local CLAIMED = '${CLAIMED_STATUS}'
local STARTED = '${STARTED_STATUS}'
local REGISTERED = '${REGISTERED}'
local function num(x) return string.format('%.17g', x) end
-- Counts (attempts, history lengths) as strings, and history field names, formatted once per call:
-- Lua formats every number it turns into a string with sprintf("%.14g"), a measurable share of a
-- script's time when done for each invocation of a batch.
local INT, HKEY = {}, {}
local function int(n)
  local s = INT[n]
  if not s then s = string.format('%d', n); INT[n] = s end
  return s
end
local function hkey(n)
  local s = HKEY[n]
  if not s then s = 'h' .. int(n); HKEY[n] = s end
  return s
end
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
local function history(status, at, attempt, runner) return status .. '|' .. at .. '|' .. attempt .. '|' .. runner end
local function wake() redis.call('PUBLISH', P .. 'wake', '1') end
-- A batch sent by columns (encodeBatch on the client), decoded: B[1] is the row count, B[2..w+1]
-- each column's value where every row has the same one and false where rows differ, then the
-- rows' values of the differing columns, row by row. An iterator over its rows, w values each;
-- the row table it yields is reused, so read it before the next step.
local function rows(B, w)
  local n, vary, row = B[1], {}, {}
  for c = 1, w do
    local v = B[c + 1]
    if v == false then vary[#vary + 1] = c else row[c] = v end
  end
  local nv, i, b = #vary, 0, w + 2
  return function()
    if i == n then return nil end
    i = i + 1
    for j = 1, nv do row[vary[j]] = B[b]; b = b + 1 end
    return row
  end
end
-- cjson encodes an empty table as an object; a list reply is always an array.
local function jsonList(t) if #t == 0 then return '[]' end return cjson.encode(t) end
-- One command for many arguments, in chunks that stay within Lua's stack.
local function variadic(cmd, key, args)
  for i = 1, #args, 1000 do redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args))) end
end
-- Index changes of a script, applied at its end with one command per key: each invocation leaves
-- the index of the status it had first and joins that of the status it has last, and the counts
-- move by the net change per status. Claimable invocations are indexed by the ready set (score
-- readyAt), owned ones by one 'owned' set (so moves between owned statuses touch no index), every
-- other status by a set of its own; the latter two are scored by creation sequence.
local GROUP = ${luaMap(STATUSES.map((s) => [s, indexOf(s)]))}
local Index = {}
Index.__index = Index
-- Kept in flat tables keyed by id rather than a table per invocation: allocations are most of what
-- a script costs beyond its commands.
function Index.new() return setmetatable({ n = 0, ids = {}, seq = {}, from = {}, to = {}, ready = {} }, Index) end
function Index:move(id, seq, from, to, readyAt)
  if not self.seq[id] then
    local n = self.n + 1
    self.n = n
    self.ids[n] = id
    self.seq[id] = seq
    self.from[id] = from or false
  end
  self.to[id] = to
  self.ready[id] = readyAt
end
function Index:apply()
  local rem, add, counts = {}, {}, {}
  local ids, seqs, froms, tos, readies = self.ids, self.seq, self.from, self.to, self.ready
  for i = 1, self.n do
    local id = ids[i]
    local from, to, seq = froms[id], tos[id], seqs[id]
    if from ~= to then
      if from then counts[from] = (counts[from] or 0) - 1 end
      counts[to] = (counts[to] or 0) + 1
    end
    local g = GROUP[to]
    local before = from and GROUP[from]
    if g == 'ready' then
      local list = add[g]
      if not list then list = {}; add[g] = list end
      local readyAt = readies[id]
      list[#list + 1] = readyAt ~= '' and readyAt or '+inf'
      list[#list + 1] = member(seq, id)
    elseif g ~= before then
      local list = add[g]
      if not list then list = {}; add[g] = list end
      list[#list + 1] = seq
      list[#list + 1] = id
    end
    if before and before ~= g then
      local list = rem[before]
      if not list then list = {}; rem[before] = list end
      list[#list + 1] = before == 'ready' and member(seq, id) or id
    end
  end
  for key, members in pairs(rem) do variadic('ZREM', P .. key, members) end
  for key, members in pairs(add) do variadic('ZADD', P .. key, members) end
  for status, n in pairs(counts) do
    if n ~= 0 then redis.call('HINCRBY', P .. 'counts', status, n) end
  end
end
forget(ARGV[2])
`;

/**
 * register: ARGV[3] = a batch by columns (see rows), 7 per invocation: id, taskId, callId, args, parentId (nullable),
 * createdAt, readyAt. All or none: fails before writing anything if one exists.
 */
const REGISTER = `
local done = prior(ARGV[1])
if done then return done end
local B = cjson.decode(ARGV[3])
local n = B[1]
if n == 0 then return 'OK' end
local keys, ids = {}, {}
for q in rows(B, 7) do
  ids[#ids + 1] = q[1]
  keys[#keys + 1] = P .. 'inv:' .. q[1]
end
local found = 0
for i = 1, n, 1000 do found = found + call('EXISTS', unpack(keys, i, math.min(i + 999, n))) end
if found > 0 then
  for i, k in ipairs(keys) do
    if call('EXISTS', k) == 1 then return redis.error_reply('invocation ' .. ids[i] .. ' already exists') end
  end
end
local last = call('INCRBY', P .. 'seq', n)
local index = Index.new()
local i = 0
for q in rows(B, 7) do
  i = i + 1
  local id, createdAt, readyAt = q[1], q[6], q[7]
  local seq = last - n + i
  local queued = CLAIMABLE[REGISTERED] and readyAt or ''
  -- Fields that every step reads or writes come first: a small hash is a flat list on the server,
  -- searched from its start for each field a command names.
  call('HSET', keys[i], 'status', REGISTERED, 'attempt', '0', 'owner', '', 'hn', '1', 'seq', string.format('%d', seq),
    'updatedAt', createdAt, 'readyAt', queued, 'retries', '0', 'taskId', q[2], 'args', q[4],
    'parentId', nullable(q[5]) or '', 'callId', q[3], 'createdAt', createdAt, 'h1', history(REGISTERED, createdAt, '0', ''))
  index:move(id, seq, nil, REGISTERED, queued)
end
index:apply()
wake()
remember(ARGV[1], 'OK')
return 'OK'
`;

/**
 * claim: ARGV[3] runnerId, ARGV[4] max, ARGV[5] now, ARGV[6] '1' to start what it claims ('0' not
 * to), ARGV[7..] tokens of earlier claims by this runner whose replies were lost. Their
 * invocations still held at the claimed attempt are handed out again first, in the state this
 * claim asks for, then up to max in all are claimed from the ready set, oldest readyAt first.
 * Each claimed one enters CLAIMED (attempt bumped, owner runnerId); with start it goes on to
 * STARTED at the same time, a second history entry. A runner that is unknown, stopped or dead
 * claims nothing.
 * Reply: JSON, 6 strings per invocation: id, taskId, args, attempt, retries, parentId ('' for none).
 */
const CLAIM = `
local token, runner, max, now, start = ARGV[1], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'
local out, handed = {}, 0
local index = Index.new()
-- What a claim hands out is also what a repeat of its token hands out again (see redeliver): the
-- reply is stored as it is sent.
local function hand(id, taskId, args, attempt, retries, parent)
  local o = handed * 6
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] = id, taskId, args, attempt, retries, parent or ''
  handed = handed + 1
end
-- History entries of this claim: only the attempt differs between them.
local claimedHead, startedHead, tail = CLAIMED .. '|' .. now .. '|', STARTED .. '|' .. now .. '|', '|' .. runner
-- Move one this runner holds in CLAIMED at attempt on to STARTED; h is its history length so far.
local function begin(k, id, seq, h, attempt)
  h = h + 1
  call('HSET', k, 'status', STARTED, 'updatedAt', now, 'hn', int(h), hkey(h), startedHead .. attempt .. tail)
  index:move(id, seq, CLAIMED, STARTED, '')
end
-- Hand out again what the claim of token t took and this runner still holds at that attempt: a
-- start claim starts those still CLAIMED and takes STARTED ones as they are (a lost start claim's
-- own); a plain claim takes only those still CLAIMED.
local function redeliver(t)
  local v = redis.call('GET', P .. 'done:' .. t)
  if not v then return false end
  local list = cjson.decode(v)
  for i = 1, #list, 6 do
    local id, attempt = list[i], list[i + 3]
    local k = P .. 'inv:' .. id
    local r = redis.call('HMGET', k, 'status', 'owner', 'attempt', 'taskId', 'args', 'retries', 'parentId', 'seq', 'hn')
    if r[2] == runner and r[3] == attempt and (r[1] == CLAIMED or (start and r[1] == STARTED)) then
      if start and r[1] == CLAIMED then begin(k, id, r[8], tonumber(r[9]), attempt) end
      hand(id, r[4], r[5], attempt, r[6], r[7])
    end
  end
  return true
end
local live = redis.call('HMGET', P .. 'runner:' .. runner, 'heartbeatAt', 'stoppedAt', 'deadAt')
if not live[1] or live[2] or live[3] then return jsonList(out) end
if token ~= '' and redeliver(token) then
  index:apply()
  return jsonList(out)
end
for i = 7, #ARGV do
  redeliver(ARGV[i])
  redis.call('UNLINK', P .. 'done:' .. ARGV[i])
end
local want = max - handed
if want > 0 then
  -- Fresh claims move from the ready set to the owned set (the index groups of every claimable
  -- status and of CLAIMED and STARTED, checked where this text is built): their index changes
  -- are written here directly, without the general Index bookkeeping.
  local ready = P .. 'ready'
  local members = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, want)
  local ends = start and STARTED or CLAIMED
  local owned, left, n = {}, {}, 0
  for _, m in ipairs(members) do
    local id = sub(m, 17)
    local k = P .. 'inv:' .. id
    local r = call('HMGET', k, 'status', 'attempt', 'taskId', 'args', 'retries', 'parentId', 'seq', 'hn')
    if r[1] and CLAIMABLE[r[1]] then
      local attempt = int(tonumber(r[2]) + 1)
      local h = tonumber(r[8]) + 1
      local claimed = claimedHead .. attempt .. tail
      if start then
        -- One write for both steps: CLAIMED at h, STARTED at h + 1.
        call('HSET', k, 'status', STARTED, 'owner', runner, 'attempt', attempt, 'updatedAt', now, 'readyAt', '',
          'hn', int(h + 1), hkey(h), claimed, hkey(h + 1), startedHead .. attempt .. tail)
      else
        call('HSET', k, 'status', CLAIMED, 'owner', runner, 'attempt', attempt, 'updatedAt', now, 'readyAt', '',
          'hn', int(h), hkey(h), claimed)
      end
      owned[#owned + 1] = r[7]
      owned[#owned + 1] = id
      left[r[1]] = (left[r[1]] or 0) + 1
      n = n + 1
      hand(id, r[3], r[4], attempt, r[5], r[6])
    end
  end
  -- Every member read leaves the ready set: a claimed one, or a stale one whose invocation moved on.
  if #members > 0 then variadic('ZREM', ready, members) end
  if n > 0 then
    variadic('ZADD', P .. 'owned', owned)
    for status, count in pairs(left) do redis.call('HINCRBY', P .. 'counts', status, -count) end
    redis.call('HINCRBY', P .. 'counts', ends, n)
  end
end
index:apply()
local reply = jsonList(out)
if handed > 0 then remember(token, reply) end
return reply
`;

/**
 * transition: ARGV[3] = a batch by columns (see rows), 13 per request: id, expect.status, expect.attempt, expect.owner ('*' for
 * any, else nullable), to, owner (nullable), attempt, readyAt ('' for null), at, by (nullable),
 * result (nullable), error (nullable), retries ('' to keep). Applied in order, each only if its
 * expectation holds. Reply: one '1' or '0' per request.
 */
const TRANSITION = `
local done = prior(ARGV[1])
if done then return done end
local applied, woke = {}, false
local index = Index.new()
for q in rows(cjson.decode(ARGV[3]), 13) do
  local id, es, ea, eo, to = q[1], q[2], q[3], q[4], q[5]
  local k = P .. 'inv:' .. id
  local r = call('HMGET', k, 'status', 'attempt', 'owner', 'seq', 'hn')
  local o = r[3] or ''
  if r[1] == es and r[2] == ea and (eo == '*' or (o == '' and eo == '') or (o ~= '' and eo == '=' .. o)) then
    local owner, attempt, readyAt, at, by = q[6], q[7], q[8], q[9], q[10]
    if owner ~= '' then owner = sub(owner, 2) end
    if by ~= '' then by = sub(by, 2) end
    local h = tonumber(r[5]) + 1
    local set = {'status', to, 'updatedAt', at, 'hn', int(h), hkey(h), to .. '|' .. at .. '|' .. attempt .. '|' .. by}
    local n = 8
    -- Only what changes is written (most steps keep the attempt and the owner); readyAt is set
    -- only while claimable, so it changes only when the step enters or leaves the queue.
    if attempt ~= r[2] then set[n + 1] = 'attempt'; set[n + 2] = attempt; n = n + 2 end
    if owner ~= o then set[n + 1] = 'owner'; set[n + 2] = owner; n = n + 2 end
    if CLAIMABLE[to] or CLAIMABLE[r[1]] then set[n + 1] = 'readyAt'; set[n + 2] = readyAt; n = n + 2 end
    local result, err, retries = q[11], q[12], q[13]
    if result ~= '' then set[n + 1] = 'result'; set[n + 2] = sub(result, 2); n = n + 2 end
    if err ~= '' then set[n + 1] = 'error'; set[n + 2] = sub(err, 2); n = n + 2 end
    if retries ~= '' then set[n + 1] = 'retries'; set[n + 2] = retries; n = n + 2 end
    call('HSET', k, unpack(set, 1, n))
    index:move(id, r[4], r[1], to, readyAt)
    applied[#applied + 1] = '1'
    if CLAIMABLE[to] or FINAL[to] then woke = true end
  else
    applied[#applied + 1] = '0'
  end
end
index:apply()
local reply = table.concat(applied)
if woke then wake() end
remember(ARGV[1], reply)
return reply
`;

/** appendLogs: ARGV[3] = JSON, 4 per line: invocationId, attempt, runnerId, the line as JSON. Reply: lines stored. */
const APPEND_LOGS = `
local done = prior(ARGV[1])
if done then return tonumber(done) end
local A = cjson.decode(ARGV[3])
local stored = 0
for b = 1, #A, 4 do
  local id = A[b]
  local r = redis.call('HMGET', P .. 'inv:' .. id, 'attempt', 'owner')
  if r[1] == A[b + 1] and r[2] == A[b + 2] then
    redis.call('RPUSH', P .. 'logs:' .. id, A[b + 3])
    stored = stored + 1
  end
end
remember(ARGV[1], stored)
return stored
`;

/**
 * finalAmong: ARGV[3] = JSON, the ids. Writes nothing of its own; reads each one's status only.
 * Reply: JSON, the ids whose invocation is final, each once.
 */
const FINAL_AMONG = `
local A = cjson.decode(ARGV[3])
local out, seen = {}, {}
for _, id in ipairs(A) do
  if not seen[id] then
    seen[id] = true
    local status = redis.call('HGET', P .. 'inv:' .. id, 'status')
    if status and FINAL[status] then out[#out + 1] = id end
  end
end
return jsonList(out)
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

/**
 * retireRunners: ARGV[3] 'stoppedAt' or 'deadAt', ARGV[4] now, ARGV[5..] ids; answers the ids it
 * retired. Unknown runners are left unknown, and one retired already keeps how and when.
 */
const RETIRE_RUNNERS = `
local retired = {}
for i = 5, #ARGV do
  local k = P .. 'runner:' .. ARGV[i]
  local r = redis.call('HMGET', k, 'heartbeatAt', 'stoppedAt', 'deadAt')
  if r[1] and not r[2] and not r[3] then
    redis.call('HSET', k, ARGV[3], ARGV[4])
    retired[#retired + 1] = ARGV[i]
  end
end
return retired
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
  nencFinalAmong: FINAL_AMONG,
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
