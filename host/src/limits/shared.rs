//! Limits and live spend counted in a Redis shared by a fleet: each check is one Lua
//! script (one round trip, atomic), so N hosts enforce one limit, not N.
//!
//! Keys, under `shared_state.key_prefix`:
//! - `limit-window:<scope>:<name>`: a hash `{id, r, t}` (window id, requests, tokens)
//!   that expires when its window ends, 60 s after the request that opened it;
//! - `limit-leases:<scope>:<name>`: a sorted set of the requests in flight, each
//!   scored by when its lease lapses (so a host that dies cannot hold slots forever);
//! - `spend:<client|provider>:<period>:<period start>:<name>`: a budget's dollars in
//!   that period, seeded from the host's ledger when missing.

use redis::{Script, Value};

use super::{
    quota::{Dimension, Hit},
    Entry, Held, Usage,
};
use crate::shared_state::{Redis, Unavailable};

/// Takes a request (and a reservation, and a lease) from every limit, or refuses with
/// the first that cannot give; checks budgets before that.
const ADMIT: &str = r#"
local nl, nb = tonumber(ARGV[1]), tonumber(ARGV[2])
local window_ms, lease_ms, member = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for j = 1, nb do
  local key = KEYS[2 * nl + j]
  local base = 6 + 4 * nl + 3 * (j - 1)
  local spent = redis.call('GET', key)
  if not spent then
    spent = ARGV[base + 1]
    redis.call('SET', key, spent, 'PXAT', ARGV[base + 2], 'NX')
  end
  if tonumber(spent) >= tonumber(ARGV[base]) then
    return {0, 4, j, tostring(spent)}
  end
end
local state = {}
for i = 1, nl do
  local w, l = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 6 + 4 * (i - 1)
  local rpm, tpm, conc, reserve = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local h = redis.call('HMGET', w, 'r', 't', 'id')
  local r, t, id, pttl = tonumber(h[1]) or 0, tonumber(h[2]) or 0, h[3], window_ms
  if id then
    pttl = redis.call('PTTL', w)
    if pttl < 0 then r, t, id, pttl = 0, 0, false, window_ms end
  end
  local inflight = 0
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', l, '-inf', now)
    inflight = redis.call('ZCARD', l)
  end
  if rpm > 0 and r + 1 > rpm then return {0, 1, i, r, t, pttl, inflight} end
  if tpm > 0 and t + reserve > tpm then return {0, 2, i, r, t, pttl, inflight} end
  if conc > 0 and inflight + 1 > conc then return {0, 3, i, r, t, pttl, inflight} end
  state[i] = {id, pttl, inflight}
end
local out = {1}
for i = 1, nl do
  local w, l = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 6 + 4 * (i - 1)
  local conc, reserve = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local id, pttl, inflight = state[i][1], state[i][2], state[i][3]
  if not id then
    id = tostring(now)
    redis.call('DEL', w)
    redis.call('HSET', w, 'id', id, 'r', 0, 't', 0)
    redis.call('PEXPIRE', w, window_ms)
  end
  local r = redis.call('HINCRBY', w, 'r', 1)
  local t = redis.call('HINCRBY', w, 't', reserve)
  if conc > 0 then
    redis.call('ZADD', l, now + lease_ms, member)
    redis.call('PEXPIRE', l, lease_ms)
    inflight = inflight + 1
  end
  out[#out + 1] = r
  out[#out + 1] = t
  out[#out + 1] = pttl
  out[#out + 1] = inflight
  out[#out + 1] = id
end
return out
"#;

/// Gives back leases and corrects reservations to the usage reported (in the window
/// they were taken from only), and adds spend to budgets (seeding a missing key).
const SETTLE: &str = r#"
local nl, ns, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 1, nl do
  local w, l = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 4 + 3 * (i - 1)
  local delta = tonumber(ARGV[base + 1])
  if delta ~= 0 and tonumber(redis.call('HGET', w, 'id')) == tonumber(ARGV[base]) then
    if redis.call('HINCRBY', w, 't', delta) < 0 then redis.call('HSET', w, 't', 0) end
  end
  if ARGV[base + 2] == '1' then redis.call('ZREM', l, member) end
end
for j = 1, ns do
  local k = KEYS[2 * nl + j]
  local base = 4 + 3 * nl + 3 * (j - 1)
  redis.call('SET', k, ARGV[base + 1], 'PXAT', ARGV[base + 2], 'NX')
  redis.call('INCRBYFLOAT', k, ARGV[base])
end
return 1
"#;

/// Each limit's requests, tokens, milliseconds left in its window (-1: none open) and
/// live leases.
const REPORT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
for i = 1, #KEYS / 2 do
  local w, l = KEYS[2 * i - 1], KEYS[2 * i]
  local h = redis.call('HMGET', w, 'r', 't')
  local pttl = redis.call('PTTL', w)
  if pttl < 0 then h = {0, 0}; pttl = -1 end
  out[#out + 1] = tonumber(h[1]) or 0
  out[#out + 1] = tonumber(h[2]) or 0
  out[#out + 1] = pttl
  out[#out + 1] = redis.call('ZCOUNT', l, '(' .. now, '+inf')
end
return out
"#;

/// The scripts, hashed once (EVALSHA; loaded again when a restarted Redis lost them).
pub(super) struct Scripts {
    admit: Script,
    settle: Script,
    report: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            report: Script::new(REPORT),
        }
    }
}

/// A budget to check before admitting: its key, limit, and the spend to seed a missing
/// key with (the host's own view of the ledger) until `expire_at_ms`.
#[derive(Debug, Clone)]
pub struct BudgetKey {
    /// The Redis key.
    pub key: String,
    /// Dollars per period.
    pub limit: f64,
    /// Spend to seed a missing key with.
    pub seed: f64,
    /// When the key lapses (the period's end, plus an hour), Unix milliseconds.
    pub expire_at_ms: u64,
}

/// Dollars to add to a budget's live spend.
#[derive(Debug, Clone)]
pub struct SpendAdd {
    /// The Redis key.
    pub key: String,
    /// Dollars spent.
    pub cost: f64,
    /// Spend to seed a missing key with, before adding `cost`.
    pub seed: f64,
    /// When the key lapses, Unix milliseconds.
    pub expire_at_ms: u64,
}

/// What the admit script decided.
pub(super) enum Decision {
    Granted(Vec<Held>),
    Limited(Hit),
    /// The budget at this index is spent: this much so far.
    Spent(usize, f64),
}

fn int(values: &[Value], i: usize) -> i64 {
    match values.get(i) {
        Some(Value::Int(n)) => *n,
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn text(values: &[Value], i: usize) -> String {
    match values.get(i) {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}

impl Scripts {
    /// One round trip: budgets, then every limit in `entries`.
    pub(super) async fn admit(
        &self,
        redis: &Redis,
        entries: &[std::sync::Arc<Entry>],
        budgets: &[BudgetKey],
        reserve: u64,
        member: &str,
        lease_ms: u64,
    ) -> Result<Decision, Unavailable> {
        let mut invocation = self.admit.prepare_invoke();
        for entry in entries {
            invocation.key(&entry.window_key).key(&entry.lease_key);
        }
        for budget in budgets {
            invocation.key(&budget.key);
        }
        invocation
            .arg(entries.len())
            .arg(budgets.len())
            .arg(crate::config::WINDOW_SECS * 1000)
            .arg(lease_ms)
            .arg(member);
        for entry in entries {
            invocation
                .arg(entry.rpm.unwrap_or(0))
                .arg(entry.tpm.unwrap_or(0))
                .arg(entry.concurrent.unwrap_or(0))
                .arg(entry.reservation(reserve));
        }
        for budget in budgets {
            invocation
                .arg(budget.limit)
                .arg(budget.seed)
                .arg(budget.expire_at_ms);
        }
        let invocation = &invocation;
        let values: Vec<Value> = redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if int(&values, 0) == 1 {
            let mut held = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let at = 1 + 5 * i;
                let usage = Usage {
                    requests: int(&values, at) as u64,
                    tokens: int(&values, at + 1) as u64,
                    reset_ms: int(&values, at + 2).max(0) as u64,
                    in_flight: int(&values, at + 3) as u64,
                };
                held.push(Held {
                    entry: entry.clone(),
                    window: int(&values, at + 4) as u64,
                    reserved: entry.reservation(reserve),
                    leased: entry.concurrent.is_some(),
                    usage,
                });
            }
            return Ok(Decision::Granted(held));
        }
        let index = (int(&values, 2).max(1) - 1) as usize;
        if int(&values, 1) == 4 {
            let spent = text(&values, 3).parse().unwrap_or(0.0);
            return Ok(Decision::Spent(index, spent));
        }
        let entry = &entries[index.min(entries.len() - 1)];
        let usage = Usage {
            requests: int(&values, 3) as u64,
            tokens: int(&values, 4) as u64,
            reset_ms: int(&values, 5).max(0) as u64,
            in_flight: int(&values, 6) as u64,
        };
        let hit = entry.refuses(&usage, reserve).unwrap_or_else(|| Hit {
            // The script and the host disagree only if the config changed in between.
            scope: entry.label(),
            kind: entry.scope,
            dimension: match int(&values, 1) {
                1 => Dimension::Requests,
                2 => Dimension::Tokens,
                _ => Dimension::Concurrent,
            },
            limit: 0,
            used: 0,
            asked: 0,
            retry_after_ms: 1000,
            quotas: entry.quotas(&usage),
        });
        Ok(Decision::Limited(hit))
    }

    /// One round trip: leases back, reservations corrected, spend added.
    pub(super) async fn settle(
        &self,
        redis: &Redis,
        held: &[Held],
        used: Option<u64>,
        member: &str,
        spends: &[SpendAdd],
    ) -> Result<(), Unavailable> {
        let mut invocation = self.settle.prepare_invoke();
        for held in held {
            invocation
                .key(&held.entry.window_key)
                .key(&held.entry.lease_key);
        }
        for spend in spends {
            invocation.key(&spend.key);
        }
        invocation.arg(held.len()).arg(spends.len()).arg(member);
        for held in held {
            let delta = used.map_or(0, |used| used as i64 - held.reserved as i64);
            invocation
                .arg(held.window)
                .arg(delta)
                .arg(if held.leased { "1" } else { "0" });
        }
        for spend in spends {
            invocation
                .arg(spend.cost)
                .arg(spend.seed)
                .arg(spend.expire_at_ms);
        }
        let invocation = &invocation;
        redis
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }

    /// One round trip: every limit's counts.
    pub(super) async fn report(
        &self,
        redis: &Redis,
        entries: &[std::sync::Arc<Entry>],
    ) -> Result<Vec<Usage>, Unavailable> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.report.prepare_invoke();
        for entry in entries {
            invocation.key(&entry.window_key).key(&entry.lease_key);
        }
        let invocation = &invocation;
        let values: Vec<Value> = redis
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok((0..entries.len())
            .map(|i| {
                let pttl = int(&values, 4 * i + 2);
                Usage {
                    requests: int(&values, 4 * i) as u64,
                    tokens: int(&values, 4 * i + 1) as u64,
                    reset_ms: pttl.max(0) as u64,
                    in_flight: int(&values, 4 * i + 3) as u64,
                }
            })
            .collect())
    }
}
