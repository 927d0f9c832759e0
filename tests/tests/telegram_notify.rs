//! telegram-notify end to end: messages published to the emulator's `ops` topic travel through its
//! SQS queue into the real bootstrap (run as the template's IAM policy), out to a fake Telegram.

use std::collections::BTreeSet;

use aws_sdk_sqs::types::QueueAttributeName;
use integration_tests::emulator::Emulator;
use integration_tests::iam::Principal;
use integration_tests::runtime::Function;
use integration_tests::stack::Stack;
use integration_tests::workspace_root;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "987654:SECRET-bot-token-for-tests";
const LOGICAL_ID: &str = "TelegramNotifyFunction";
/// The delivery records' bucket (TelegramDeliveryRecordBucket).
const RECORDS: &str = "telegram-deliveries";

struct Bed {
    emulator: Emulator,
    principal: Principal,
    function: Function,
    telegram: MockServer,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: String,
    queue_url: String,
    dlq_url: String,
    secret_arn: String,
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
    let attrs =
        sqs.get_queue_attributes().queue_url(&url).attribute_names(QueueAttributeName::QueueArn).send().await.unwrap();
    let arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    (url, arn)
}

fn function_env(
    emulator: &Emulator,
    principal: &Principal,
    secret: &str,
    api: &str,
    dlq: &str,
    chats: &str,
) -> Vec<(String, String)> {
    let mut env = emulator.function_env(&principal.keys);
    env.extend([
        ("TELEGRAM_SECRET_ARN".to_owned(), secret.to_owned()),
        ("TELEGRAM_CHATS".to_owned(), chats.to_owned()),
        ("TELEGRAM_API_URL".to_owned(), api.to_owned()),
        ("TELEGRAM_DLQ_URL".to_owned(), dlq.to_owned()),
        ("TELEGRAM_DELIVERY_BUCKET".to_owned(), RECORDS.to_owned()),
    ]);
    env
}

impl Bed {
    async fn start() -> Bed {
        let emulator = Emulator::start().await.unwrap();
        let admin = emulator.admin().await;
        let secrets = aws_sdk_secretsmanager::Client::new(&admin);
        let secret_arn = secrets
            .create_secret()
            .name("telegram")
            .secret_string(json!({"bot_token": TOKEN}).to_string())
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let sns = aws_sdk_sns::Client::new(&admin);
        let sqs = aws_sdk_sqs::Client::new(&admin);
        aws_sdk_s3::Client::new(&admin).create_bucket().bucket(RECORDS).send().await.unwrap();
        let topic_arn = sns.create_topic().name("ops").send().await.unwrap().topic_arn.unwrap();
        let (queue_url, queue_arn) = queue(&sqs, "telegram").await;
        let (dlq_url, _) = queue(&sqs, "telegram-dlq").await;
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await.unwrap();

        let telegram = MockServer::start().await;
        let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{}", dlq_url.rsplit('/').next().unwrap());
        let stack = Stack::new(&emulator)
            .await
            .unwrap()
            .topic("OpsTopic", &topic_arn)
            .resource("TelegramSecret", &secret_arn, &[])
            .resource("TelegramDeadLetterQueue", &dlq_url, &[("Arn", &dlq_arn)])
            .bucket("TelegramDeliveryRecordBucket", RECORDS);
        let principal = Principal::for_function(&emulator, LOGICAL_ID, &stack).await.unwrap();
        let env = function_env(&emulator, &principal, &secret_arn, &telegram.uri(), &dlq_url, "111,-100222:7");
        let function = Function::start("telegram-notify", &env).await.unwrap();
        Bed { emulator, principal, function, telegram, sns, sqs, topic_arn, queue_url, dlq_url, secret_arn }
    }

    /// Another process of the function, for other chats.
    async fn function_for(&self, chats: &str) -> Function {
        let env =
            function_env(&self.emulator, &self.principal, &self.secret_arn, &self.telegram.uri(), &self.dlq_url, chats);
        Function::start("telegram-notify", &env).await.unwrap()
    }

    /// Another process of the function with its deadline (`Timeout` in template.yaml) `scale` times sooner.
    async fn function_scaled(&self, scale: f64) -> Function {
        let env = function_env(
            &self.emulator,
            &self.principal,
            &self.secret_arn,
            &self.telegram.uri(),
            &self.dlq_url,
            "111,-100222:7",
        );
        Function::start_scaled("telegram-notify", &env, scale).await.unwrap()
    }

    async fn publish(&self, subject: Option<&str>, message: &str) {
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .set_subject(subject.map(str::to_owned))
            .message(message)
            .send()
            .await
            .unwrap();
    }

    /// What the SQS trigger would hand the function: the queue's messages as an SQS event.
    async fn sqs_event(&self, queue_url: &str) -> Value {
        let out = self.sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
        let records: Vec<Value> = out
            .messages()
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:telegram",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        json!({ "Records": records })
    }

    async fn sent(&self) -> Vec<Value> {
        self.telegram.received_requests().await.unwrap().iter().map(|r| r.body_json::<Value>().unwrap()).collect()
    }
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": 1}}))
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(workspace_root().join("events/telegram-notify").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_messages_reach_every_chat_once_rendered_and_the_token_stays_secret() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;

    let alarm = sample("sns-alarm-cpu.json")["Records"][0]["Sns"]["Message"].as_str().unwrap().to_owned();
    let note = sample("sns-suite-notification.json")["Records"][0]["Sns"]["Message"].as_str().unwrap().to_owned();
    bed.publish(Some("ALARM: cpu"), &alarm).await;
    bed.publish(Some("EBS snapshots"), &note).await;
    bed.publish(Some("Hello <there>"), "plain & simple").await;

    let event = bed.sqs_event(&bed.queue_url).await;
    assert_eq!(event["Records"].as_array().unwrap().len(), 3);
    let response = bed.function.invoke(&event).await.unwrap().response();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(response["sent"].as_array().unwrap().len(), 6, "{response}");

    let sent = bed.sent().await;
    assert_eq!(sent.len(), 6);
    let chats: BTreeSet<String> = sent.iter().map(|b| format!("{}/{}", b["chat_id"], b["message_thread_id"])).collect();
    assert_eq!(chats, BTreeSet::from(["\"-100222\"/7".to_owned(), "\"111\"/null".to_owned()]));
    let texts: Vec<&str> = sent.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.starts_with("🔴 <b>ALARM</b> · <b>openclaw-gateway-cpu-high</b>")));
    assert!(texts.iter().any(|t| t.starts_with("⚠️ <b>EBS snapshots: retention floor kept 3 expired snapshot(s)</b>")));
    assert!(texts.contains(&"📨 <b>Hello &lt;there&gt;</b>\nplain &amp; simple"));
    assert!(sent.iter().all(|b| b["parse_mode"] == "HTML"));

    // At-least-once delivery: the same records again send nothing new.
    let again = bed.function.invoke(&event).await.unwrap().response();
    assert_eq!(again["duplicates"].as_array().unwrap().len(), 6);
    assert_eq!(bed.sent().await.len(), 6);

    // A CloudWatch alarm invoking the function directly (Lambda alarm action).
    let direct = bed.function.invoke(&sample("lambda-alarm-metric.json")).await.unwrap().response();
    assert_eq!(direct["sent"].as_array().unwrap().len(), 2);

    let output = bed.function.settled_output().await;
    assert!(!output.contains("SECRET-bot-token"), "the token leaked into the output");
    assert!(!format!("{response}{again}{direct}").contains("SECRET-bot-token"));

    // Least privilege: every call allowed, and the template grants nothing unused but the key
    // (Secrets Manager decrypts with it, SQS encrypts with it, on the function's behalf), the
    // dead-letter queue and the release of a failed claim (no failure here).
    let calls = bed.emulator.calls_by(&bed.principal.keys).await.unwrap();
    assert!(calls.iter().all(|c| c.allowed), "{calls:?}");
    let used: BTreeSet<String> = calls.into_iter().map(|c| c.action).collect();
    assert_eq!(
        used,
        BTreeSet::from(["secretsmanager:GetSecretValue", "s3:ListBucket", "s3:PutObject"].map(str::to_owned))
    );
    let unused: BTreeSet<String> = bed.principal.granted.difference(&used).cloned().collect();
    assert_eq!(
        unused,
        BTreeSet::from(["kms:Decrypt", "kms:GenerateDataKey", "sqs:SendMessage", "s3:DeleteObject"].map(str::to_owned))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_that_refuses_gets_its_copy_later_and_the_others_never_twice() {
    let bed = Bed::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": "111"})))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was kicked"})),
        )
        .up_to_n_times(1)
        .mount(&bed.telegram)
        .await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;

    bed.publish(None, "gateway restarted").await;
    let event = bed.sqs_event(&bed.queue_url).await;
    let response = bed.function.invoke(&event).await.unwrap().response();
    assert_eq!(response["batchItemFailures"], json!([]), "the remainder is written down, the record is done");
    assert_eq!(response["dead_lettered"][0]["chats"], json!([{"id": "111"}]));
    assert_eq!(bed.sent().await.len(), 2);

    // Once the cause is fixed, an operator redrives the dead-letter queue into the ops queue.
    let replay = bed.sqs_event(&bed.dlq_url).await;
    assert_eq!(replay["Records"].as_array().unwrap().len(), 1);
    let replayed = bed.function.invoke(&replay).await.unwrap().response();
    assert_eq!(replayed["sent"].as_array().unwrap().len(), 1);
    let sent = bed.sent().await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2]["chat_id"], "111");
    assert_eq!(sent[2]["text"], "📨 <b>Message on the ops topic</b>\ngateway restarted");

    let used: BTreeSet<String> =
        bed.emulator.calls_by(&bed.principal.keys).await.unwrap().into_iter().map(|c| c.action).collect();
    assert!(used.contains("sqs:SendMessage"));
}

/// The keys under the delivery records' prefix, without the per-delivery hash: ("claim-0", "sent"...).
async fn records(bed: &Bed) -> Vec<(String, String)> {
    let s3 = aws_sdk_s3::Client::new(&bed.emulator.admin().await);
    let listed = s3.list_objects_v2().bucket(RECORDS).send().await.unwrap();
    let mut out: Vec<(String, String)> = listed
        .contents()
        .iter()
        .map(|o| {
            let key = o.key().unwrap().strip_prefix("deliveries/").unwrap();
            let (delivery, name) = key.split_once('/').unwrap();
            (delivery.to_owned(), name.to_owned())
        })
        .collect();
    out.sort();
    out
}

fn sends_per_chat(sent: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for body in sent {
        *out.entry(format!("{}/{}", body["chat_id"], body["message_thread_id"])).or_insert(0) += 1;
    }
    out
}

/// One message handed to two containers at once (SNS and SQS deliver at least once, and two
/// invocations of the function run side by side): the delivery records let exactly one of them
/// send it to each chat; the other waits for it and counts a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_in_two_containers_at_once_is_sent_once_per_chat() {
    let bed = Bed::start().await;
    // Telegram takes its time, so both invocations are inside the delivery together.
    Mock::given(method("POST"))
        .respond_with(ok().set_delay(std::time::Duration::from_millis(300)))
        .mount(&bed.telegram)
        .await;
    let other = bed.function_for("111,-100222:7").await;
    bed.publish(Some("ALARM: disk"), "the data volume fills").await;
    let event = bed.sqs_event(&bed.queue_url).await;
    assert_eq!(event["Records"].as_array().unwrap().len(), 1);

    let (one, two) = tokio::join!(bed.function.invoke(&event), other.invoke(&event));
    let (one, two) = (one.unwrap().response(), two.unwrap().response());
    let sent = bed.sent().await;
    assert_eq!(
        sends_per_chat(&sent),
        std::collections::BTreeMap::from([("\"-100222\"/7".to_owned(), 1), ("\"111\"/null".to_owned(), 1)]),
        "{one}\n{two}"
    );
    let both = |field: &str| one[field].as_array().unwrap().len() + two[field].as_array().unwrap().len();
    assert_eq!((both("sent"), both("duplicates"), both("in_flight_elsewhere")), (2, 2, 0), "{one}\n{two}");
    assert_eq!((&one["batchItemFailures"], &two["batchItemFailures"]), (&json!([]), &json!([])));
    assert!(
        [&one, &two]
            .iter()
            .flat_map(|r| r["duplicates"].as_array().unwrap())
            .all(|d| d["seen_by"] == "another container"),
        "{one}\n{two}"
    );
    // Each delivery: one claim, marked sent.
    let names: Vec<String> = records(&bed).await.into_iter().map(|(_, name)| name).collect();
    assert_eq!(names, ["claim-0", "sent", "claim-0", "sent"], "{:?}", records(&bed).await);

    // The same record a third time, in either container: nothing new.
    let again = other.invoke(&event).await.unwrap().response();
    assert_eq!(again["duplicates"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(bed.sent().await.len(), 2);
}

/// A send that fails gives its claim back: the retry (here the dead-letter replay, handled by
/// another container) claims it again and delivers, and the chat that got it is not sent it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_releases_its_claim_and_the_retry_elsewhere_delivers() {
    let bed = Bed::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": "111"})))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was kicked"})),
        )
        .up_to_n_times(1)
        .mount(&bed.telegram)
        .await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;

    bed.publish(None, "gateway restarted").await;
    let event = bed.sqs_event(&bed.queue_url).await;
    let first = bed.function.invoke(&event).await.unwrap().response();
    assert_eq!(first["dead_lettered"][0]["chats"], json!([{"id": "111"}]), "{first}");
    // The chat that got it: claimed and sent; the one that refused: no claim left behind.
    let names: Vec<String> = records(&bed).await.into_iter().map(|(_, name)| name).collect();
    assert_eq!(names, ["claim-0", "sent"], "{:?}", records(&bed).await);

    let other = bed.function_for("111,-100222:7").await;
    let replay = bed.sqs_event(&bed.dlq_url).await;
    let replayed = other.invoke(&replay).await.unwrap().response();
    assert_eq!(replayed["sent"].as_array().unwrap().len(), 1, "{replayed}");
    assert_eq!(replayed["in_flight_elsewhere"], json!([]), "{replayed}");
    // The original record again, in the other container: both chats have it.
    let again = other.invoke(&event).await.unwrap().response();
    assert_eq!(again["duplicates"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(
        sends_per_chat(&bed.sent().await),
        std::collections::BTreeMap::from([("\"-100222\"/7".to_owned(), 1), ("\"111\"/null".to_owned(), 2)]),
        "one refused send to 111, then one delivered"
    );
    let used: BTreeSet<String> =
        bed.emulator.calls_by(&bed.principal.keys).await.unwrap().into_iter().map(|c| c.action).collect();
    assert!(used.contains("s3:DeleteObject"), "{used:?}");
}

/// A container that died holding a claim (its claim older than the function can run) does not
/// hold the message back: the next copy takes the delivery over with the next claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_container_is_taken_over_once_stale() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    bed.publish(None, "backup done").await;
    let event = bed.sqs_event(&bed.queue_url).await;
    let id =
        event["Records"][0]["body"].as_str().map(|b| serde_json::from_str::<Value>(b).unwrap()["MessageId"].clone());
    let id = id.unwrap().as_str().unwrap().to_owned();

    // Both chats' claims, written three minutes ago by a container that then died.
    let s3 = aws_sdk_s3::Client::new(&bed.emulator.admin().await);
    bed.emulator.set_clock(chrono::Utc::now() - chrono::Duration::minutes(3)).await.unwrap();
    for chat in ["111", "-100222:7"] {
        let key = format!("{}claim-0", telegram_notify::ledger::delivery_prefix(&id, chat));
        s3.put_object().bucket(RECORDS).key(key).body(b"{}".to_vec().into()).send().await.unwrap();
    }
    bed.emulator.set_clock(chrono::Utc::now()).await.unwrap();

    let response = bed.function.invoke(&event).await.unwrap().response();
    assert_eq!(response["sent"].as_array().unwrap().len(), 2, "{response}");
    let names: Vec<String> = records(&bed).await.into_iter().map(|(_, name)| name).collect();
    assert_eq!(names, ["claim-0", "claim-1", "sent", "claim-0", "claim-1", "sent"], "{:?}", records(&bed).await);
}

/// telegram-notify's work does not fit in its time: one chat's Telegram answers after 4 s, and a
/// batch of three messages to two chats would take longer than the run's `Timeout` (60 s in
/// template.yaml, here on a time scale of 6: 10 s, of which it keeps 3 to write down the rest).
/// What could not be sent in time goes to the dead-letter queue; the batch ends in time with no
/// record failed (a run killed by Lambda would hand the whole batch back, and every chat already
/// served would get it again); a redrive delivers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_outlasts_the_deadline_is_written_down_not_killed() {
    let bed = Bed::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"chat_id": "111"})))
        .respond_with(ok().set_delay(std::time::Duration::from_secs(4)))
        .mount(&bed.telegram)
        .await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let function = bed.function_scaled(6.0).await;
    assert_eq!(function.timeout(), std::time::Duration::from_secs(60), "template.yaml's Timeout");

    for n in 1..=3 {
        bed.publish(None, &format!("message {n}")).await;
    }
    let event = bed.sqs_event(&bed.queue_url).await;
    assert_eq!(event["Records"].as_array().unwrap().len(), 3);
    let started = std::time::Instant::now();
    let response = function.invoke(&event).await.unwrap().response();
    assert!(started.elapsed() < function.deadline(), "{:?}", started.elapsed());
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let sent = response["sent"].as_array().unwrap().len();
    let written_down: usize =
        response["dead_lettered"].as_array().unwrap().iter().map(|d| d["chats"].as_array().unwrap().len()).sum();
    assert!(sent >= 2 && written_down >= 1, "{response}");
    assert_eq!(sent + written_down, 6, "every message, every chat: sent or written down, once: {response}");

    // Telegram is quick again and the operator redrives the dead-letter queue.
    bed.telegram.reset().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let mut replayed = 0;
    loop {
        let replay = bed.sqs_event(&bed.dlq_url).await;
        if replay["Records"].as_array().unwrap().is_empty() {
            break;
        }
        let response = function.invoke(&replay).await.unwrap().response();
        replayed += response["sent"].as_array().unwrap().len();
    }
    assert_eq!(replayed, written_down, "exactly the chats that had not had them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_without_sending_anything() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    for name in ["bad-s3-event.json", "bad-scheduled-event.json"] {
        let (error_type, _) = bed.function.invoke(&sample(name)).await.unwrap().error();
        assert_eq!(error_type, "InputError", "{name}");
    }
    assert!(bed.sent().await.is_empty());
    assert!(bed.emulator.calls_by(&bed.principal.keys).await.unwrap().is_empty(), "not even the token was read");
}

/// An alarm on `ops` is anyone's to write who may publish there: a forged ARN must not turn the
/// "Open in CloudWatch" link into a link to another site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_alarm_arn_gets_no_link() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let mut alarm: Value =
        serde_json::from_str(sample("sns-alarm-cpu.json")["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    alarm["AlarmArn"] = json!("arn:aws:cloudwatch:evil.example/#:1:alarm:x");
    alarm["AWSAccountId"] = json!("evil.example");
    bed.publish(Some("ALARM: cpu"), &alarm.to_string()).await;
    let response = bed.function.invoke(&bed.sqs_event(&bed.queue_url).await).await.unwrap().response();
    assert_eq!(response["sent"].as_array().unwrap().len(), 2, "{response}");
    for body in bed.sent().await {
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("openclaw-gateway-cpu-high"), "{text}");
        assert!(!text.contains("href") && !text.contains("evil.example"), "{text}");
    }
}

/// Any body on the `ops` queue can look like a replayed remainder and name its chats: only those in
/// `TELEGRAM_CHATS` get it, the others are refused and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_naming_chats_outside_telegram_chats_reaches_only_configured_ones() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let forged = json!({"openclaw_ops_undelivered": {
        "id": "forged-1", "chats": [{"id": "999"}, {"id": "111"}, {"id": "-100222"}], "errors": [],
        "origin": {"sns": {"subject": null, "body": "write to my chat"}}
    }});
    bed.sqs.send_message().queue_url(&bed.queue_url).message_body(forged.to_string()).send().await.unwrap();
    let response = bed.function.invoke(&bed.sqs_event(&bed.queue_url).await).await.unwrap().response();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(
        response["refused"],
        json!([
            {"id": "forged-1", "chat": "999", "reason": "not in TELEGRAM_CHATS"},
            {"id": "forged-1", "chat": "-100222", "reason": "not in TELEGRAM_CHATS"}
        ]),
        "-100222 is configured only with its topic 7"
    );
    let chats: Vec<Value> = bed.sent().await.iter().map(|b| b["chat_id"].clone()).collect();
    assert_eq!(chats, [json!("111")]);
    assert!(bed.function.output().contains("not in TELEGRAM_CHATS"), "the refusal is logged");
}

/// A rotated bot token reaches a warm container at its first 401, not only new containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_read_again_when_telegram_refuses_the_old_one() {
    const NEW_TOKEN: &str = "987654:ROTATED-bot-token-for-tests";
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    bed.publish(None, "before the rotation").await;
    let first = bed.function.invoke(&bed.sqs_event(&bed.queue_url).await).await.unwrap().response();
    assert_eq!(first["sent"].as_array().unwrap().len(), 2);

    // The operator rotates the token: the old one is revoked, the secret holds the new one.
    let secrets = aws_sdk_secretsmanager::Client::new(&bed.emulator.admin().await);
    let rotated = json!({"bot_token": NEW_TOKEN}).to_string();
    secrets.put_secret_value().secret_id(&bed.secret_arn).secret_string(rotated).send().await.unwrap();
    bed.telegram.reset().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{TOKEN}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
        .mount(&bed.telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{NEW_TOKEN}/sendMessage")))
        .respond_with(ok())
        .mount(&bed.telegram)
        .await;

    bed.publish(None, "after the rotation").await;
    let second = bed.function.invoke(&bed.sqs_event(&bed.queue_url).await).await.unwrap().response();
    assert_eq!(second["sent"].as_array().unwrap().len(), 2, "{second}");
    assert_eq!(second["dead_lettered"], json!([]));
    let paths: Vec<String> =
        bed.telegram.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(paths.iter().filter(|p| p.contains("SECRET-bot-token")).count(), 1, "one 401, then the new token");
    assert_eq!(paths.iter().filter(|p| p.contains("ROTATED-bot-token")).count(), 2);
    let reads = bed
        .emulator
        .calls_by(&bed.principal.keys)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.action == "secretsmanager:GetSecretValue")
        .count();
    assert_eq!(reads, 2, "read at the first message and again after the 401, not per message");
    assert!(!bed.function.output().contains("ROTATED-bot-token"));
}

/// A fake Telegram that holds each chat to one message a second, as the real one does: faster
/// sends get 429 with `retry_after`.
struct RateLimited {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    bounced: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for RateLimited {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        let chat = body["chat_id"].to_string();
        let now = std::time::Instant::now();
        let mut last = self.last.lock().unwrap();
        if let Some(previous) = last.get(&chat)
            && now.duration_since(*previous) < std::time::Duration::from_millis(950)
        {
            self.bounced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return ResponseTemplate::new(429).set_body_json(
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
            );
        }
        last.insert(chat, now);
        ok()
    }
}

/// 50 alarms in a burst to one chat arrive complete, once each, in order within each batch, paced
/// instead of bouncing off 429s. Prints the time it took (the measurement for the README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fifty_alarms_arrives_complete_and_paced() {
    let bed = Bed::start().await;
    let limiter = std::sync::Arc::new(RateLimited { last: Default::default(), bounced: Default::default() });
    struct Shared(std::sync::Arc<RateLimited>);
    impl wiremock::Respond for Shared {
        fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
            self.0.respond(request)
        }
    }
    Mock::given(method("POST")).respond_with(Shared(limiter.clone())).mount(&bed.telegram).await;
    // One chat for this test: the other would double the time without telling more.
    let function = bed.function_for("111").await;

    let template = sample("sns-alarm-cpu.json")["Records"][0]["Sns"]["Message"].as_str().unwrap().to_owned();
    for n in 0..50 {
        let mut alarm: Value = serde_json::from_str(&template).unwrap();
        alarm["AlarmName"] = json!(format!("burst-{n:02}"));
        bed.publish(None, &alarm.to_string()).await;
    }
    let started = std::time::Instant::now();
    let mut batches = 0;
    loop {
        let event = bed.sqs_event(&bed.queue_url).await;
        if event["Records"].as_array().unwrap().is_empty() {
            break;
        }
        let response = function.invoke(&event).await.unwrap().response();
        assert_eq!(response["batchItemFailures"], json!([]));
        for record in event["Records"].as_array().unwrap() {
            let handle = record["receiptHandle"].as_str().unwrap();
            bed.sqs.delete_message().queue_url(&bed.queue_url).receipt_handle(handle).send().await.unwrap();
        }
        batches += 1;
    }
    let elapsed = started.elapsed();
    let names: Vec<String> = bed
        .sent()
        .await
        .iter()
        .filter(|b| b["text"].is_string())
        .map(|b| b["text"].as_str().unwrap().split("<b>").nth(2).unwrap().trim_end_matches("</b>").to_owned())
        .collect();
    let bounced = limiter.bounced.load(std::sync::atomic::Ordering::SeqCst);
    let delivered: Vec<&String> = names.iter().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(delivered.len(), 50, "every alarm arrived");
    assert_eq!(names.len() - bounced, 50, "none twice");
    println!("burst: 50 alarms to one chat in {batches} batches took {elapsed:?}; {bounced} sends bounced with 429");
    assert!(bounced <= 5, "paced, not bouncing: {bounced} bounced");
}

/// Cold start, by hand: `OPENCLAW_FUNCTION_BIN_DIR=<release dir> cargo test -p integration-tests
/// --test telegram_notify cold_start -- --ignored --nocapture` prints spawn → first answer of a
/// direct alarm (token fetch from Secrets Manager and the send included), ten times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn cold_start() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let function = bed.function_for("111").await;
        function.invoke(&sample("lambda-alarm-metric.json")).await.unwrap().response();
        times.push(started.elapsed());
    }
    times.sort();
    println!("cold start (spawn → first answer): median {:?}, max {:?}", times[5], times[9]);
}

/// Every sample event, handed to the real bootstrap, reaches the fake Telegram exactly as its golden
/// file (functions/telegram-notify/golden) says, with the golden's notification setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_reaches_telegram_as_its_golden_file_says() {
    let bed = Bed::start().await;
    Mock::given(method("POST")).respond_with(ok()).mount(&bed.telegram).await;
    let golden_dir = workspace_root().join("functions/telegram-notify/golden");
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("events/telegram-notify"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("bad-"))
        .collect();
    names.sort();
    assert!(names.len() >= 10);
    for name in names {
        let before = bed.sent().await.len();
        bed.function.invoke(&sample(&name)).await.unwrap().response();
        let golden = std::fs::read_to_string(golden_dir.join(name.replace(".json", ".txt"))).unwrap();
        let expected: Vec<(bool, String)> = golden
            .split("\n----\n")
            .map(|part| {
                let silent = part.lines().nth(1).unwrap() == "silent: true";
                let html = part.splitn(4, '\n').nth(3).unwrap().trim_end_matches('\n').to_owned();
                (silent, html)
            })
            .collect();
        // Two chats each get every message, in order.
        let sent: Vec<(bool, String)> = bed.sent().await[before..]
            .iter()
            .filter(|b| b["chat_id"] == "111")
            .map(|b| (b["disable_notification"] == true, b["text"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(sent, expected, "{name}");
    }
}
