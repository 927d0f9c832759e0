//! Delivery against a local fake Telegram (wiremock) answering what the real one does under load
//! and change: 429 with retry_after, 5xx, "can't parse entities", a group migrated to a supergroup.

use std::time::Duration;

use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::tls;
use serde_json::{Value, json};
use telegram_notify::apply::{Failed, Pacer};
use telegram_notify::render::Rendered;
use telegram_notify::telegram::{Chat, Telegram};
use tokio::time::Instant;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "123456:TEST-TOKEN-never-printed";
const SEND: &str = "/bot123456:TEST-TOKEN-never-printed/sendMessage";

/// The function's client, with the suite's TLS configuration (Mozilla's roots only).
fn http_client() -> reqwest::Client {
    telegram_notify::telegram::http_client(&tls::build(&MapEnv::new(&[])).unwrap())
}

fn ok(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": id}}))
}

fn error(code: u16, description: &str, parameters: Value) -> ResponseTemplate {
    ResponseTemplate::new(code)
        .set_body_json(json!({"ok": false, "error_code": code, "description": description, "parameters": parameters}))
}

fn message() -> Rendered {
    Rendered { html: "<b>hi</b> &amp; bye".into(), plain: "hi & bye".into(), silent: false }
}

fn chat(id: &str) -> Chat {
    Chat { id: id.into(), thread: None }
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server.received_requests().await.unwrap().iter().map(|r: &Request| r.body_json().unwrap()).collect()
}

#[tokio::test]
async fn sends_html_to_the_chat_and_its_topic() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(SEND)).respond_with(ok(7)).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let sent = Pacer::default()
        .deliver(&tg, &Chat { id: "-100".into(), thread: Some(42) }, &message(), later(30))
        .await
        .unwrap();
    assert_eq!(sent.message_id, 7);
    let body = &bodies(&server).await[0];
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["text"], "<b>hi</b> &amp; bye");
    assert_eq!(body["chat_id"], "-100");
    assert_eq!(body["message_thread_id"], 42);
    assert_eq!(body["disable_notification"], false);
}

#[tokio::test]
async fn waits_retry_after_on_429_then_sends() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(429, "Too Many Requests: retry after 1", json!({"retry_after": 1})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ok(1)).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let started = std::time::Instant::now();
    let sent = Pacer::default().deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap();
    assert_eq!(sent.waited_429, 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(429, "Too Many Requests", json!({"retry_after": 60})))
        .mount(&server)
        .await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let started = std::time::Instant::now();
    let err = Pacer::default().deliver(&tg, &chat("1"), &message(), later(10)).await.unwrap_err().to_string();
    assert!(err.contains("deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_given_up() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(502, "Bad Gateway", json!({})))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ok(3)).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    assert_eq!(Pacer::default().deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap().message_id, 3);

    let down = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&down).await;
    let tg = Telegram::new(http_client(), &down.uri(), TOKEN.into());
    let err = Pacer::default().deliver(&tg, &chat("1"), &message(), later(60)).await.unwrap_err().to_string();
    assert_eq!(down.received_requests().await.unwrap().len(), 5, "bounded tries");
    assert!(!err.contains(TOKEN));
}

#[tokio::test]
async fn unparseable_html_is_resent_once_as_plain_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"parse_mode": "HTML"})))
        .respond_with(error(400, "Bad Request: can't parse entities: Unsupported start tag", json!({})))
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ok(9)).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let sent = Pacer::default().deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap();
    assert!(sent.as_plain_text);
    let all = bodies(&server).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["text"], "hi & bye");
    assert!(all[1].get("parse_mode").is_none());
}

#[tokio::test]
async fn a_migrated_group_gets_the_message_at_its_new_id_from_then_on() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": "-200"})))
        .respond_with(error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            json!({"migrate_to_chat_id": -1009}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": "-1009"})))
        .respond_with(ok(5))
        .mount(&server)
        .await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let pacer = Pacer::default();
    let sent = pacer.deliver(&tg, &chat("-200"), &message(), later(30)).await.unwrap();
    assert_eq!(sent.chat.id, "-1009");
    pacer.deliver(&tg, &chat("-200"), &message(), later(30)).await.unwrap();
    assert_eq!(bodies(&server).await.len(), 3, "the second message goes straight to the new id");
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_never_show_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(403, "Forbidden: bot was blocked by the user", json!({})))
        .mount(&server)
        .await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let err = Pacer::default().deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap_err().to_string();
    assert!(err.contains("403") && err.contains("blocked"), "{err}");
    assert_eq!(bodies(&server).await.len(), 1);

    // A connection error's text names the URL, which holds the token: it must not reach us.
    let tg = Telegram::new(http_client(), "http://127.0.0.1:9", TOKEN.into());
    let err = Pacer::default().deliver(&tg, &chat("1"), &message(), later(5)).await.unwrap_err().to_string();
    assert!(!err.contains("TEST-TOKEN"), "{err}");
}

#[tokio::test]
async fn messages_to_one_chat_are_paced_about_one_a_second() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ok(1)).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let pacer = Pacer::default();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        pacer.deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "three messages to one chat take two intervals");
}

#[tokio::test]
async fn a_refused_token_is_reported_as_such_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(error(401, "Unauthorized", json!({}))).mount(&server).await;
    let tg = Telegram::new(http_client(), &server.uri(), TOKEN.into());
    let err = Pacer::default().deliver(&tg, &chat("1"), &message(), later(30)).await.unwrap_err();
    assert_eq!(err, Failed::TokenRejected("401: Unauthorized".into()));
    assert_eq!(bodies(&server).await.len(), 1, "the caller reads the token again, not the pacer");
}
