//! The handler in process: a real SNS alarm record, the token from mocked Secrets Manager, the
//! message delivered to a local stand-in for Telegram's Bot API.

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use lambda_runtime::LambdaEvent;
use openclaw_ops_shared::config::MapEnv;
use openclaw_ops_shared::samples;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const SECRET: &str = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:openclaw-ops/telegram-AbCdEf";

#[tokio::test]
async fn an_sns_alarm_is_sent_to_the_chat_with_the_token_from_the_secret() {
    let telegram = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/bot123456:secret-token/sendMessage"))
        .and(body_string_contains("openclaw-gateway-cpu-high"))
        .and(body_string_contains("-1001234567890"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true, "result": {"message_id": 42}})),
        )
        .expect(1)
        .mount(&telegram)
        .await;
    let secret = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.secret_id() == Some(SECRET))
        .then_output(|| {
            GetSecretValueOutput::builder().secret_string(r#"{"bot_token": "123456:secret-token"}"#).build()
        });
    let none = Vec::<&Rule>::new;
    let clients = Clients {
        secrets: mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&secret]),
        sqs: mock_client!(aws_sdk_sqs, RuleMode::Sequential, none()),
        s3: mock_client!(aws_sdk_s3, RuleMode::Sequential, none()),
    };
    let uri = telegram.uri();
    let config = Config::from_env(&MapEnv::new(&[
        ("TELEGRAM_SECRET_ARN", SECRET),
        ("TELEGRAM_CHATS", "-1001234567890"),
        ("TELEGRAM_API_URL", uri.as_str()),
    ]))
    .unwrap();
    let handler = Handler::new(config, clients, crate::telegram::test_http_client());
    let sample = samples::samples(env!("CARGO_MANIFEST_DIR"), "telegram-notify")
        .into_iter()
        .find(|s| s.name == "sns-alarm-cpu.json")
        .expect("the CPU alarm sample");
    let event: Value = serde_json::from_str(&sample.text).unwrap();

    let response = handler.handle(LambdaEvent::new(event, samples::context(FUNCTION))).await.unwrap();
    let sent = &response.report.sent;
    assert_eq!(sent.len(), 1, "{:?}", response.report);
    assert_eq!((sent[0].chat.as_str(), sent[0].message_id), ("-1001234567890", 42));
    assert_eq!(sent[0].id, "eb14db7d-b509-a8b7-05b5-bc117c39fae7", "the SNS message id, for duplicates");
    assert!(response.batch.is_none(), "SNS is not a batch");
    assert!(response.report.dead_lettered.is_empty() && response.report.skipped.is_empty());
    assert_eq!(secret.num_calls(), 1);
    telegram.verify().await;
}
