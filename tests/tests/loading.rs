//! Loading a config's providers through the real loader: good plugins serve, bad ones
//! are recorded with their reason, and the host keeps serving.

use e2e::{mock_plugin, plugin, Scratch};
use provider_host::{
    registry::{Origin, State},
    Host,
};
use provider_sdk::{ChatRequest, Message};

fn echo(text: &str) -> ChatRequest {
    ChatRequest::new("mock/echo", vec![Message::user(text)])
}

#[tokio::test]
async fn bad_plugins_fail_alone_and_the_good_one_keeps_serving() {
    let scratch = Scratch::new();
    let junk = scratch.write("junk.so", "not a library");
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "junk", "library": junk},
            {"name": "layout", "library": plugin("fixture_bad_layout")},
            {"name": "v2", "library": plugin("fixture_sdk_v2")},
            {"name": "nothing", "library": plugin("fixture_not_a_provider")},
            {"name": "boom", "library": plugin("fixture_panic_in_construct")},
            {"name": "off", "library": "missing.so", "enabled": false},
            {"name": "keyed", "library": mock_plugin(), "api_key_env": "E2E_SURELY_UNSET_KEY"}
        ]
    }));
    let host = Host::from_config_file(&config).expect("a valid config loads even if plugins fail");
    let registry = host.registry();
    let state = |name: &str| registry.provider(name).unwrap().state.clone();
    assert_eq!(state("mock"), State::Ready);
    assert_eq!(state("off"), State::Disabled);
    assert_eq!(
        state("keyed"),
        State::Unavailable("missing key: set E2E_SURELY_UNSET_KEY".to_owned())
    );
    for (name, expected) in [
        ("junk", "not a shared library"),
        ("layout", "layout does not match"),
        ("v2", "built against provider-sdk 2.0.0"),
        ("nothing", "not a provider plugin"),
        ("boom", "plugin panicked"),
    ] {
        match state(name) {
            State::Failed(reason) => assert!(reason.contains(expected), "{name}: {reason}"),
            other => panic!("{name} must have failed, is {other}"),
        }
    }
    let done = host.chat(echo("still here")).await.expect("mock serves");
    assert_eq!(done.response.message.content.as_deref(), Some("still here"));
}

#[test]
fn plugins_are_opened_from_a_content_addressed_copy() {
    let scratch = Scratch::new();
    let host = Host::from_config_file(&scratch.mock_config()).unwrap();
    let registry = host.registry();
    let mock = registry.provider("mock").unwrap();
    let sha = mock.sha256.clone().expect("hash recorded");
    assert_eq!(sha.len(), 64);
    let copy = scratch
        .path("cache")
        .join(format!("libmock_provider-{}.so", &sha[..16]));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(mock_plugin()).unwrap(),
        "the copy is byte-identical"
    );
    assert_eq!(host.loader().mapped_libraries(), 1);
}

#[test]
fn one_library_can_back_several_entries() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "mock-slow", "library": mock_plugin(), "options": {"long_interval_ms": 5}}
        ]
    }));
    let host = Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    assert!(registry.provider("mock").unwrap().ready.is_some());
    assert!(registry.provider("mock-slow").unwrap().ready.is_some());
    assert_eq!(
        host.loader().mapped_libraries(),
        1,
        "same content, one mapping"
    );
}

#[test]
fn bad_provider_options_fail_construction_with_the_plugins_reason() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "options": {"long_interval": 5}}]
    }));
    let host = Host::from_config_file(&config).unwrap();
    match &host.registry().provider("mock").unwrap().state {
        State::Failed(reason) => {
            assert!(reason.contains("construct"), "{reason}");
            assert!(reason.contains("unknown field `long_interval`"), "{reason}");
        }
        other => panic!("expected a construct failure, got {other}"),
    }
}

#[tokio::test]
async fn drop_in_plugins_serve_under_their_manifest_name_and_clashes_are_reported() {
    let scratch = Scratch::new();
    let bytes = std::fs::read(mock_plugin()).unwrap();
    let first = scratch.write("plugins/a-mock.so", &bytes);
    let second = scratch.write("plugins/b-mock.so", &bytes);
    scratch.write("plugins/readme.txt", "ignored: not a library suffix");
    let config = scratch.config(serde_json::json!({ "plugin_dirs": [scratch.path("plugins")] }));
    let host = Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    let mock = registry
        .provider("mock")
        .expect("served under the manifest's name");
    assert_eq!(mock.origin, Origin::PluginDir);
    assert_eq!(mock.library, first);
    assert_eq!(registry.problems().len(), 1, "{:?}", registry.problems());
    let problem = &registry.problems()[0];
    assert!(
        problem.contains(&second.display().to_string())
            && problem.contains("claims provider name `mock`"),
        "{problem}"
    );
    host.chat(echo("drop-in"))
        .await
        .expect("the drop-in serves");
}

#[test]
fn a_drop_in_cannot_take_a_configured_name_and_a_missing_folder_is_reported() {
    let scratch = Scratch::new();
    scratch.write(
        "plugins/libmock_provider.so",
        std::fs::read(mock_plugin()).unwrap(),
    );
    let config = scratch.config(serde_json::json!({
        "plugin_dirs": [scratch.path("plugins"), scratch.path("absent")],
        "providers": [{"name": "mock", "library": mock_plugin()}]
    }));
    let host = Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    assert_eq!(
        registry.provider("mock").unwrap().origin,
        Origin::Config,
        "the configured entry wins"
    );
    let problems = registry.problems().join("\n");
    assert!(
        problems.contains("claims provider name `mock`"),
        "{problems}"
    );
    assert!(problems.contains("absent: does not exist"), "{problems}");
}

#[test]
fn an_empty_api_key_env_means_the_upstream_takes_no_key() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "local", "library": plugin("openai_provider"), "api_key_env": "", "options": {"preset": "ollama"}},
            {"name": "cloud", "library": plugin("openai_provider"), "options": {"preset": "groq"}, "api_key_env": "E2E_SURELY_UNSET_GROQ"}
        ]
    }));
    let host = Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    assert_eq!(registry.provider("local").unwrap().state, State::Ready);
    assert_eq!(
        registry.provider("cloud").unwrap().state,
        State::Unavailable("missing key: set E2E_SURELY_UNSET_GROQ".to_owned())
    );
}
