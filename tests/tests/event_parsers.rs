//! Every function's event parser, fed random JSON within a size limit, answers (accepts or refuses)
//! and never panics. A panic in a Lambda is caught by the runtime, but it is a crash with no clear
//! error: whatever reaches a function must get an `InputError` or be accepted.
//!
//! The inputs are a seeded random walk, not proptest: fully random JSON almost never reaches past a
//! parser's first check, so most inputs are the function's own sample events (events/<function>)
//! with random parts replaced, removed or added, built from the keys and strings those samples use
//! (JSON inside strings, such as an SNS message or an SQS body, included), plus values at the edges
//! (far dates, huge and negative numbers, odd Unicode). The seed is printed; set
//! `OPENCLAW_FUZZ_SEED` to replay a run and `OPENCLAW_FUZZ_CASES` for a longer one.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fastrand::Rng;
use integration_tests::workspace_root;
use serde_json::{Map, Value, json};

/// Inputs larger than this (serialised) are not tried: events are at most 256 KiB and the parsers'
/// work does not depend on bulk, so small inputs explore more shapes per second.
const MAX_BYTES: usize = 8 * 1024;
const MAX_DEPTH: usize = 5;

/// Values at the edges of what the parsers read: dates chrono can barely hold, numbers past i64,
/// ids in odd shapes, text that is not ASCII.
const EDGES: &[&str] = &[
    "+262142-12-15",
    "-262143-01-01",
    "0000-01-01",
    "9999-12-31",
    "2026-02-29",
    "2026-13-01",
    "2026-11-25T03:00:00.000+0000",
    "2026-11-25T03:00:00Z",
    "+262142-12-31T23:59:59Z",
    "1969-12-31T23:59:59.999999999-23:59",
    "",
    " ",
    "arn:aws:cloudwatch:evil.example/#:1:alarm:x",
    "arn:::::::",
    "i-",
    "@",
    "-9223372036854775808",
    "18446744073709551616",
    "1e400",
    "NaN",
    "🔴\u{0}\u{200b}\u{202e}x",
    "a:b:c",
    "<b>&amp;</b>",
];

/// The keys and strings one function's samples use, walked into JSON held in strings.
struct Vocabulary {
    keys: Vec<String>,
    strings: Vec<String>,
}

impl Vocabulary {
    fn of(samples: &[Value]) -> Self {
        fn walk(v: &Value, keys: &mut Vec<String>, strings: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        keys.push(k.clone());
                        walk(v, keys, strings);
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(i, keys, strings)),
                Value::String(s) => {
                    strings.push(s.clone());
                    if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
                        walk(&inner, keys, strings);
                    }
                }
                _ => {}
            }
        }
        let (mut keys, mut strings) = (Vec::new(), EDGES.iter().map(|s| s.to_string()).collect());
        samples.iter().for_each(|s| walk(s, &mut keys, &mut strings));
        keys.sort();
        keys.dedup();
        strings.sort();
        strings.dedup();
        Vocabulary { keys, strings }
    }

    fn key(&self, rng: &mut Rng) -> String {
        if rng.u8(..10) == 0 { random_text(rng) } else { self.keys[rng.usize(..self.keys.len())].clone() }
    }

    fn string(&self, rng: &mut Rng, samples: &[Value], depth: usize) -> String {
        match rng.u8(..10) {
            0 => random_text(rng),
            // JSON in a string: an SNS message, an SQS body.
            1 | 2 if depth < MAX_DEPTH => {
                let inner = if rng.bool() { self.value(rng, samples, depth + 1) } else { self.mutate(rng, samples) };
                inner.to_string()
            }
            _ => self.strings[rng.usize(..self.strings.len())].clone(),
        }
    }

    fn value(&self, rng: &mut Rng, samples: &[Value], depth: usize) -> Value {
        let leaf = depth >= MAX_DEPTH;
        match rng.u8(..if leaf { 6 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => json!(rng.i64(..)),
            3 => json!(rng.f64() * 10f64.powi(rng.i32(-10..300))),
            4 | 5 => Value::String(self.string(rng, samples, depth)),
            6 => Value::Array((0..rng.usize(..4)).map(|_| self.value(rng, samples, depth + 1)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..rng.usize(..5) {
                    map.insert(self.key(rng), self.value(rng, samples, depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    /// A sample with 1–3 random changes: a subtree replaced, a key removed, a key added.
    fn mutate(&self, rng: &mut Rng, samples: &[Value]) -> Value {
        let mut v = samples[rng.usize(..samples.len())].clone();
        for _ in 0..rng.usize(1..4) {
            let target = random_node(rng, &mut v);
            match (rng.u8(..3), &mut *target) {
                (0, Value::Object(map)) if !map.is_empty() => {
                    let key = map.keys().nth(rng.usize(..map.len())).unwrap().clone();
                    map.remove(&key);
                }
                (1, Value::Object(map)) => {
                    map.insert(self.key(rng), self.value(rng, samples, 2));
                }
                _ => *target = self.value(rng, samples, 2),
            }
        }
        v
    }
}

fn random_text(rng: &mut Rng) -> String {
    (0..rng.usize(..12)).map(|_| if rng.bool() { rng.alphanumeric() } else { rng.char(..) }).collect()
}

/// A node of `v` picked by a random walk down from the root.
fn random_node<'a>(rng: &mut Rng, v: &'a mut Value) -> &'a mut Value {
    if rng.u8(..3) == 0 {
        return v;
    }
    let len = match v {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if len == 0 {
        return v;
    }
    let i = rng.usize(..len);
    match v {
        Value::Object(map) => random_node(rng, map.values_mut().nth(i).unwrap()),
        Value::Array(items) => random_node(rng, &mut items[i]),
        _ => unreachable!("len > 0 only for containers"),
    }
}

fn samples(function: &str) -> Vec<Value> {
    let dir = workspace_root().join("events").join(function);
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).ok())
        .collect();
    assert!(!out.is_empty(), "events/{function} has samples");
    out.sort_by_key(|v| v.to_string());
    out
}

/// Feeds `cases` inputs to `parse`; fails naming the first input that panicked. Answers how many
/// were accepted, so a test can check the inputs reach past the first check.
fn never_panics(function: &str, parse: impl Fn(Value) -> bool) -> usize {
    let seed = std::env::var("OPENCLAW_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0c1a_5eed_u64);
    let cases: usize = std::env::var("OPENCLAW_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let samples = samples(function);
    let vocabulary = Vocabulary::of(&samples);
    let mut rng = Rng::with_seed(seed);
    let (mut tried, mut accepted) = (0, 0);
    while tried < cases {
        let input = if rng.u8(..4) == 0 {
            vocabulary.value(&mut rng, &samples, 0)
        } else {
            vocabulary.mutate(&mut rng, &samples)
        };
        let text = input.to_string();
        if text.len() > MAX_BYTES {
            continue;
        }
        tried += 1;
        match catch_unwind(AssertUnwindSafe(|| parse(input))) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panic!("{function}: the parser panicked (seed {seed:#x}, case {tried}) on {text}"),
        }
    }
    println!("{function}: {tried} inputs (seed {seed:#x}), {accepted} accepted, none panicked");
    assert!(accepted > 0 && accepted < tried, "{function}: the inputs should be both accepted and refused");
    accepted
}

#[test]
fn ebs_snapshots_event_parser_never_panics() {
    never_panics("ebs-snapshots", |v| ebs_snapshots::event::Event::parse(v).is_ok());
}

#[test]
fn s3_backup_event_parser_never_panics() {
    never_panics("s3-backup", |v| s3_backup::event::Event::parse(v).is_ok());
}

#[test]
fn spot_recovery_event_parser_never_panics() {
    never_panics("spot-recovery", |v| {
        // The function's own dispatch: a follow-up check's event, else EC2's.
        if spot_recovery::follow_up::FollowUp::claims(&v) {
            spot_recovery::follow_up::FollowUp::parse(v).is_ok()
        } else {
            spot_recovery::event::Event::parse(v).is_ok()
        }
    });
}

/// The parsed check's periods too: that is where an absurd `as_of` used to panic.
#[test]
fn cost_check_event_parser_never_panics() {
    never_panics("cost-check", |v| match cost_check::event::Event::parse(v) {
        Ok(check) => {
            if let Some(day) = check.as_of {
                check.periods(day);
            }
            true
        }
        Err(_) => false,
    });
}

/// The parsed messages rendered too, in every INSUFFICIENT_DATA setting: all of it is input from
/// anyone allowed to publish on `ops`.
#[test]
fn telegram_notify_event_parser_never_panics() {
    use telegram_notify::render::{InsufficientData, render};
    never_panics("telegram-notify", |v| match telegram_notify::event::parse(v) {
        Ok(items) => {
            for item in items {
                for setting in [InsufficientData::Send, InsufficientData::Silent, InsufficientData::Skip] {
                    render(&item.message, setting);
                }
            }
            true
        }
        Err(_) => false,
    });
}
