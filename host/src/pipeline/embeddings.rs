//! Embeddings through the pipeline: the same client budget, routing, capability gate
//! (`capabilities.embeddings`), provider budgets, breakers, retries, fallback and usage
//! as a chat, with the plugin's embedding calls (SDK 1.2) in place of its chat calls.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use provider_sdk::{EmbeddingRequest, EmbeddingResponse};

use super::{
    attempts::{self, EmbeddingJob, Route},
    record::Recorder,
    upstream, Caller, DispatchError, NativeBody, Pipeline,
};
use crate::{registry::Target, snapshot::Snapshot};

/// One embeddings call: what to embed and for whom.
#[derive(Debug, Clone)]
pub struct EmbeddingCall {
    /// The request; `model` is the client's model string (`provider/model` or alias).
    pub request: EmbeddingRequest,
    /// Who asks.
    pub caller: Caller,
    /// The client's own body, for targets whose upstream speaks its protocol (exact
    /// passthrough); the others get `request`, translated by their plugin.
    pub native: Option<NativeBody>,
}

impl EmbeddingCall {
    /// A call by an anonymous caller, arriving now.
    pub fn new(request: EmbeddingRequest) -> EmbeddingCall {
        EmbeddingCall {
            request,
            caller: Caller::default(),
            native: None,
        }
    }
}

/// Embeddings and who made them.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The target that answered.
    pub target: Target,
    /// Who answered and what it took.
    pub route: Route,
    /// One vector per input item, in order.
    pub response: EmbeddingResponse,
    /// The upstream's own body, when the target spoke the client's protocol: the
    /// ingress relays it as it is (`response` is the plugin's reading of it).
    pub native: Option<Bytes>,
}

impl Pipeline {
    /// Answers an embeddings `call` on `snapshot`, and counts it (prompt tokens, and
    /// their cost at the model's input price).
    pub async fn embed(
        self: &Arc<Self>,
        snapshot: Arc<Snapshot>,
        call: EmbeddingCall,
    ) -> Result<Embedded, DispatchError> {
        let mut recorder = Recorder::new(self.clone(), snapshot.clone(), call.caller, false);
        let client = recorder.client().to_owned();
        let admission =
            recorder.admission(super::admission::embedding_reserve(&call.request), true);
        let answered = self
            .embeddings(
                &snapshot,
                &client,
                call.request,
                call.native.as_ref(),
                admission,
            )
            .await;
        match &answered {
            Ok(done) => {
                recorder.routed(&done.route);
                recorder.usage(done.response.usage.map(Into::into));
            }
            Err(error) => recorder.failed(error),
        }
        recorder.finish(false);
        recorder.settled().await;
        answered
    }

    async fn embeddings(
        &self,
        snapshot: &Snapshot,
        client: &str,
        request: EmbeddingRequest,
        native: Option<&NativeBody>,
        admission: &mut super::admission::Admission,
    ) -> Result<Embedded, DispatchError> {
        self.check_client_budget(snapshot, client)?;
        let transport = &snapshot.transport;
        let clock = attempts::WaitClock::default();
        let waited = &clock;
        let expected = request.input.len();
        let ((response, body), route) = attempts::run(
            snapshot,
            attempts::Learned {
                breakers: &self.breakers,
                last_errors: &self.last_errors,
            },
            self.jitter.as_ref(),
            &mut EmbeddingJob::new(request, native),
            admission,
            waited,
            |provider, prepared, deadline| async move {
                let started = Instant::now();
                let answer = async {
                    let response =
                        upstream::send(transport, &provider, &prepared, deadline).await?;
                    let (parsed, body) = upstream::read_embeddings(&provider, response).await?;
                    check_count(&parsed, expected)?;
                    Ok((parsed, prepared.is_native().then_some(body)))
                }
                .await;
                waited.add(started.elapsed());
                answer
            },
        )
        .await?;
        Ok(Embedded {
            target: route.target.clone(),
            route,
            response,
            native: body,
        })
    }
}

/// An answer with another number of vectors than inputs cannot be matched up with
/// them: the upstream misbehaved.
fn check_count(
    response: &EmbeddingResponse,
    expected: usize,
) -> Result<(), provider_sdk::ProviderError> {
    if response.embeddings.len() == expected {
        return Ok(());
    }
    Err(provider_sdk::ProviderError::new(
        provider_sdk::ErrorKind::ProviderService,
        format!(
            "the upstream answered {} embeddings for {expected} inputs",
            response.embeddings.len()
        ),
    ))
}
