//! Admission: before a target is sent a call, the call must fit the client's limits,
//! the target's provider and `provider/model` limits and (with Redis) the live spend
//! of their budgets, all in one check. A client's limit or budget refuses the call; a
//! target's moves a fallback chain to its next target. What the call took is held
//! until it ends, then settled with the usage the upstream reported.

use std::sync::Arc;

use provider_sdk::{ChatRequest, Content, ContentPart, EmbeddingInput, EmbeddingRequest, Message};

use super::{DispatchError, Pipeline};
use crate::{
    config::{Budget, LimitScope},
    limits::{
        Admitted, BudgetKey, Grant, Hit, Pending, RateLimits, SpendAdd, DEFAULT_OUTPUT_RESERVE,
    },
    registry::Target,
    snapshot::Snapshot,
    usage::BudgetSpent,
};

/// Why a target was not admitted.
pub(super) enum Refused {
    /// Its provider's or its own rate limit: try the next target.
    Limited(String),
    /// Its provider's budget is spent: try the next target.
    BudgetSpent(String),
    /// The call is refused whatever the target (the client's limit or budget, or the
    /// shared state is unreachable under `fail_closed`).
    Call(DispatchError),
}

/// One call's standing with the limits: what it asks, what it holds.
pub(super) struct Admission {
    pipeline: Arc<Pipeline>,
    client: String,
    /// Tokens reserved per limit until the usage is known.
    reserve: u64,
    /// Whether rate limits apply (a token count is not a generation).
    limited: bool,
    member: String,
    lease_ms: u64,
    client_checked: bool,
    client_grant: Option<Grant>,
    target_grant: Option<Grant>,
    /// Targets' limits that refused, for the error when every target is limited.
    hits: Vec<Hit>,
}

impl Admission {
    /// A call by `client` reserving `reserve` tokens; `limited` says whether rate
    /// limits apply (budgets always do).
    /// The time by the meter's clock (Unix seconds), for what attempts note.
    pub(super) fn now(&self) -> f64 {
        self.pipeline.meter().now()
    }

    pub(super) fn new(
        pipeline: Arc<Pipeline>,
        snapshot: &Snapshot,
        client: &str,
        reserve: u64,
        limited: bool,
    ) -> Admission {
        let config = &snapshot.config;
        // A lease outlives the longest a call can run, so only a dead host's lapse.
        let lease_secs = config.request_timeout + config.timeouts.total + 60.0;
        Admission {
            member: pipeline.limiter().lease_name(),
            pipeline,
            client: client.to_owned(),
            reserve,
            limited,
            lease_ms: (lease_secs * 1000.0) as u64,
            client_checked: false,
            client_grant: None,
            target_grant: None,
            hits: Vec::new(),
        }
    }

    /// Counts the call against the budgets and limits of `target`, or says why not.
    pub(super) async fn admit(
        &mut self,
        snapshot: &Snapshot,
        target: &Target,
    ) -> Result<(), Refused> {
        let pipeline = self.pipeline.clone();
        let (meter, limiter) = (pipeline.meter(), pipeline.limiter());
        // This host's own count first: no round trip when it already says no.
        if let Err(spent) = meter.check_provider(&target.provider, &snapshot.config.budgets) {
            return Err(Refused::BudgetSpent(format!("{target}: {spent}")));
        }
        let now = meter.now();
        let mut entries = Vec::with_capacity(3);
        if self.limited {
            let applicable =
                limiter.applicable(snapshot, &self.client, &target.provider, &target.model);
            if !self.client_checked {
                entries.extend(applicable.client);
            }
            entries.extend(applicable.provider);
            entries.extend(applicable.target);
        }
        // Budgets are read live from Redis (this host's own count is checked before);
        // without Redis there are no keys.
        let mut budgets: Vec<(&Budget, BudgetKey)> = Vec::new();
        let wanted = snapshot.config.budgets.iter().filter(|b| {
            (!self.client_checked && b.client.as_deref() == Some(self.client.as_str()))
                || b.provider.as_deref() == Some(target.provider.as_str())
        });
        for budget in wanted {
            if let Some((key, expire_at_ms)) = limiter.budget_key(budget, now) {
                let seed = meter.spent_on(budget, now);
                budgets.push((
                    budget,
                    BudgetKey {
                        key,
                        limit: budget.limit_usd,
                        seed,
                        expire_at_ms,
                    },
                ));
            }
        }
        let keys: Vec<BudgetKey> = budgets.iter().map(|(_, k)| k.clone()).collect();
        let admitted = limiter
            .admit(
                &entries,
                &keys,
                self.reserve,
                &self.member,
                now,
                self.lease_ms,
            )
            .await;
        match admitted {
            Admitted::Granted(grant) => {
                let (client, rest) = grant.split_client();
                if !self.client_checked {
                    self.client_checked = true;
                    self.client_grant = Some(client);
                }
                self.target_grant = Some(rest);
                Ok(())
            }
            Admitted::Limited(hit) if hit.kind == LimitScope::Client => Err(Refused::Call(
                DispatchError::RateLimited(crate::limits::LimitExceeded {
                    model: None,
                    hits: vec![hit],
                }),
            )),
            Admitted::Limited(hit) => {
                let reason = format!("{target} skipped: {hit}");
                self.hits.push(hit);
                Err(Refused::Limited(reason))
            }
            Admitted::BudgetSpent(index, spent) => {
                let budget = budgets.get(index).map(|(b, _)| *b);
                let Some(budget) = budget else {
                    return Err(Refused::BudgetSpent(format!("{target}: a budget is spent")));
                };
                let (scope, is_client) = match &budget.client {
                    Some(client) => (format!("client {client}"), true),
                    None => (
                        format!("provider {}", budget.provider.as_deref().unwrap_or("")),
                        false,
                    ),
                };
                let spent = BudgetSpent {
                    scope,
                    period: budget.period,
                    limit: budget.limit_usd,
                    spent,
                };
                if is_client {
                    Err(Refused::Call(DispatchError::ClientBudgetSpent(spent)))
                } else {
                    Err(Refused::BudgetSpent(format!("{target}: {spent}")))
                }
            }
            Admitted::Unavailable(unavailable) => Err(Refused::Call(
                DispatchError::SharedStateUnavailable(unavailable),
            )),
        }
    }

    /// The call moves on from the target it was admitted to: its request still counts,
    /// its reservation and concurrency slot go back.
    pub(super) fn release_target(&mut self) {
        if let Some(grant) = self.target_grant.take() {
            if grant.is_empty() {
                return;
            }
            let pending = self.pipeline.limiter().settle(
                vec![grant],
                Some(0),
                self.member.clone(),
                Vec::new(),
            );
            spawn(pending);
        }
    }

    /// The tightest quotas of the limits the call holds.
    pub(super) fn quotas(&self) -> RateLimits {
        let mut quotas = RateLimits::default();
        for grant in [&self.client_grant, &self.target_grant]
            .into_iter()
            .flatten()
        {
            quotas.tighten(grant.quotas());
        }
        quotas
    }

    /// Every target was refused by its limits: the error for the call.
    pub(super) fn all_limited(&mut self, model: &str) -> Option<DispatchError> {
        if self.hits.is_empty() {
            return None;
        }
        Some(DispatchError::RateLimited(crate::limits::LimitExceeded {
            model: Some(model.to_owned()),
            hits: std::mem::take(&mut self.hits),
        }))
    }

    /// The call ended, having used `used` tokens (`None`: unknown, the reservation
    /// stands); `spends` go to the budgets' live spend in Redis.
    pub(super) fn settle(&mut self, used: Option<u64>, spends: Vec<SpendAdd>) -> Option<Pending> {
        let grants: Vec<Grant> = [self.client_grant.take(), self.target_grant.take()]
            .into_iter()
            .flatten()
            .filter(|g| !g.is_empty())
            .collect();
        self.pipeline
            .limiter()
            .settle(grants, used, self.member.clone(), spends)
    }
}

/// Runs Redis work left by a call without holding the caller up; without a runtime
/// (the host going away) it is dropped, and leases lapse by themselves.
pub(super) fn spawn(pending: Option<Pending>) {
    if let Some(pending) = pending {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(pending);
        }
    }
}

/// Tokens a chat reserves: its prompt's estimated size (about four bytes a token) plus
/// its output limit, or [`DEFAULT_OUTPUT_RESERVE`].
pub(super) fn chat_reserve(request: &ChatRequest, body_len: Option<usize>) -> u64 {
    let output = request
        .max_completion_tokens
        .or(request.max_tokens)
        .map_or(DEFAULT_OUTPUT_RESERVE, u64::from);
    let prompt = match body_len {
        // The client's own body is at hand and a fair upper bound of its text.
        Some(len) => len as u64,
        None => request.messages.iter().map(message_bytes).sum(),
    };
    prompt.div_ceil(4) + output
}

/// Tokens an embeddings call reserves: its input's estimated size.
pub(super) fn embedding_reserve(request: &EmbeddingRequest) -> u64 {
    match &request.input {
        EmbeddingInput::Texts(texts) => texts
            .iter()
            .map(|t| t.len() as u64)
            .sum::<u64>()
            .div_ceil(4),
        EmbeddingInput::Tokens(lists) => lists.iter().map(|l| l.len() as u64).sum(),
    }
}

fn message_bytes(message: &Message) -> u64 {
    let content = |c: &Content| -> u64 {
        match c {
            Content::Text(t) => t.len() as u64,
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len() as u64,
                    // An image costs on the order of a thousand tokens.
                    ContentPart::ImageUrl { .. } => 4_000,
                })
                .sum(),
        }
    };
    match message {
        Message::System { content: c, .. }
        | Message::Developer { content: c, .. }
        | Message::User { content: c, .. }
        | Message::Tool { content: c, .. } => content(c),
        Message::Assistant {
            content: c,
            tool_calls,
            ..
        } => {
            c.as_ref().map(content).unwrap_or(0)
                + tool_calls
                    .iter()
                    .map(|t| t.function.arguments.len() as u64)
                    .sum::<u64>()
        }
    }
}
