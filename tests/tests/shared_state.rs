//! The shared state of a fleet: one real `redis-server`, reached through the host's
//! handle. Commands run, an outage is counted once and fails fast, and counting resumes
//! by itself when the server is back.

use std::time::{Duration, Instant};

use e2e::redis::RedisServer;
use provider_host::{
    config::{SharedStateConfig, UnavailablePolicy},
    shared_state::{redis::cmd, SharedState},
};

fn shared(server: &RedisServer) -> SharedState {
    SharedState::from_config(&SharedStateConfig {
        redis: Some(server.url().as_str().into()),
        on_unavailable: UnavailablePolicy::FailClosed,
        key_prefix: "test-fleet".to_owned(),
        timeout_ms: 200,
    })
}

async fn incr(state: &SharedState) -> Result<i64, String> {
    let redis = state.redis().expect("configured");
    let key = redis.key(&["counter"]);
    redis
        .run(|mut c| async move { cmd("INCR").arg(&key).query_async(&mut c).await })
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn commands_reach_the_shared_server_under_the_configured_prefix() {
    let server = RedisServer::start();
    let state = shared(&server);
    assert_eq!(state.backend(), "redis");
    assert_eq!(state.policy(), UnavailablePolicy::FailClosed);
    assert_eq!(incr(&state).await, Ok(1));
    assert_eq!(incr(&state).await, Ok(2));
    assert_eq!(
        server.command(&["GET", "test-fleet:counter"]).as_deref(),
        Some("$1"),
        "the counter is stored under the key prefix"
    );
    let status = state.redis().unwrap().status();
    assert!(status.healthy);
    assert_eq!(status.outages, 0);
}

#[tokio::test]
async fn an_outage_fails_fast_is_counted_once_and_heals_by_itself() {
    let mut server = RedisServer::start();
    let state = shared(&server);
    assert_eq!(incr(&state).await, Ok(1));

    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let error = incr(&state).await.expect_err("the server is down");
        assert!(error.contains("unavailable"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a dead server must not hold a request: took {:?}",
            started.elapsed()
        );
    }
    let status = state.redis().unwrap().status();
    assert!(!status.healthy);
    assert_eq!(status.outages, 1, "five failures in one outage count once");
    assert_eq!(status.failed_commands, 5);

    server.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    let value = loop {
        match incr(&state).await {
            Ok(value) => break value,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("Redis is back but the host did not reconnect: {e}"),
        }
    };
    assert_eq!(
        value, 1,
        "the restarted server is empty: counting starts over"
    );
    let status = state.redis().unwrap().status();
    assert!(status.healthy);
    assert_eq!(status.outages, 1);
}

#[test]
fn without_redis_counters_stay_in_memory() {
    let state = SharedState::from_config(&SharedStateConfig::default());
    assert_eq!(state.backend(), "memory");
    assert!(state.redis().is_none());
    assert_eq!(state.policy(), UnavailablePolicy::FailOpen);
}
