//! Messages as Telegram HTML. Text is built as spans and escaped once at the end, so no alarm
//! name, description or reason can break the markup or smuggle in a link; the visible length is
//! known exactly, so a long message is cut inside its body, never in the header or the link.

use openclaw_ops_shared::notification::{Notification, Severity};

use crate::alarm::{Alarm, State};
use crate::message::Message;

/// Telegram's limit: 4096 characters after entity parsing (counted in UTF-16 code units).
pub const MAX_VISIBLE: usize = 4096;
const CUT_MARK: &str = "… [cut]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Bold(String),
    Italic(String),
    Code(String),
    Pre(String),
    Link { text: String, url: String },
}

impl Span {
    fn text_mut(&mut self) -> &mut String {
        match self {
            Span::Text(t) | Span::Bold(t) | Span::Italic(t) | Span::Code(t) | Span::Pre(t) => t,
            Span::Link { text, .. } => text,
        }
    }

    fn visible(&self) -> &str {
        match self {
            Span::Text(t) | Span::Bold(t) | Span::Italic(t) | Span::Code(t) | Span::Pre(t) => t,
            Span::Link { text, .. } => text,
        }
    }
}

type Line = Vec<Span>;

/// A message as Telegram will show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub html: String,
    /// The same text without markup: what is resent if Telegram still cannot parse the HTML.
    pub plain: String,
    /// Sent without a sound (`disable_notification`).
    pub silent: bool,
}

/// `&` first, then `<` and `>` (and `"` for attribute values).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

struct Doc {
    header: Vec<Line>,
    body: Vec<Line>,
    footer: Vec<Line>,
}

impl Doc {
    fn lines(&self) -> impl Iterator<Item = &Line> {
        self.header.iter().chain(&self.body).chain(&self.footer)
    }

    fn visible_len(&self) -> usize {
        let lines: Vec<&Line> = self.lines().collect();
        let text: usize = lines.iter().flat_map(|l| l.iter()).map(|s| utf16_len(s.visible())).sum();
        text + lines.len().saturating_sub(1)
    }

    /// Cuts the longest body span until the whole fits.
    fn fit(&mut self) {
        while self.visible_len() > MAX_VISIBLE {
            let excess = self.visible_len() - MAX_VISIBLE;
            let Some(longest) = self.body.iter_mut().flatten().max_by_key(|s| utf16_len(s.visible())) else { return };
            let text = longest.text_mut();
            let keep = utf16_len(text).saturating_sub(excess + utf16_len(CUT_MARK));
            if keep == 0 && text.is_empty() {
                return;
            }
            let mut units = 0;
            let end = text
                .char_indices()
                .find(|(_, c)| {
                    units += c.len_utf16();
                    units > keep
                })
                .map_or(text.len(), |(i, _)| i);
            text.truncate(end);
            text.push_str(CUT_MARK);
        }
    }

    fn render(mut self, silent: bool) -> Rendered {
        self.fit();
        let html = self.lines().map(|l| l.iter().map(span_html).collect::<String>()).collect::<Vec<_>>().join("\n");
        let plain =
            self.lines().map(|l| l.iter().map(Span::visible).collect::<String>()).collect::<Vec<_>>().join("\n");
        Rendered { html, plain, silent }
    }
}

fn span_html(span: &Span) -> String {
    match span {
        Span::Text(t) => escape(t),
        Span::Bold(t) => format!("<b>{}</b>", escape(t)),
        Span::Italic(t) => format!("<i>{}</i>", escape(t)),
        Span::Code(t) => format!("<code>{}</code>", escape(t)),
        Span::Pre(t) => format!("<pre>{}</pre>", escape(t)),
        Span::Link { text, url } => format!("<a href=\"{}\">{}</a>", escape(url), escape(text)),
    }
}

fn field(name: &str, value: impl Into<String>) -> Line {
    vec![Span::Bold(format!("{name}:")), Span::Text(format!(" {}", value.into()))]
}

/// How INSUFFICIENT_DATA transitions are sent (`TELEGRAM_INSUFFICIENT_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsufficientData {
    Send,
    Silent,
    Skip,
}

pub fn render(message: &Message, insufficient: InsufficientData) -> Rendered {
    match message {
        Message::Alarm(alarm) => render_alarm(alarm, insufficient),
        Message::Notification(n) => render_notification(n),
        Message::Plain { subject, text } => render_plain(subject.as_deref(), text),
    }
}

fn state_emoji(state: &State) -> &'static str {
    match state {
        State::Alarm => "🔴",
        State::Ok => "✅",
        State::InsufficientData => "⚪",
        State::Other(_) => "🔷",
    }
}

fn comparison(op: &str) -> &str {
    match op {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => "≥",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "≤",
        "LessThanLowerOrGreaterThanUpperThreshold" => "outside the band",
        "LessThanLowerThreshold" => "below the band",
        "GreaterThanUpperThreshold" => "above the band",
        other => other,
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

fn render_alarm(alarm: &Alarm, insufficient: InsufficientData) -> Rendered {
    let header = vec![vec![
        Span::Text(format!("{} ", state_emoji(&alarm.state))),
        Span::Bold(alarm.state.as_str().to_owned()),
        Span::Text(" · ".into()),
        Span::Bold(alarm.name.clone()),
    ]];
    let mut body: Vec<Line> = Vec::new();
    if let Some(description) = &alarm.description {
        body.push(vec![Span::Text(description.clone())]);
    }
    body.push(Vec::new());
    let transition = match &alarm.previous {
        Some(previous) => format!("{} → {}", previous.as_str(), alarm.state.as_str()),
        None => alarm.state.as_str().to_owned(),
    };
    body.push(field("State", transition));
    if let Some(reason) = &alarm.reason {
        body.push(field("Reason", reason.clone()));
    }
    for metric in &alarm.metrics {
        let mut text = [metric.namespace.as_deref(), Some(metric.name.as_str())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !metric.dimensions.is_empty() {
            let dims: Vec<String> = metric.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!(" ({})", dims.join(", ")));
        }
        match (&metric.statistic, metric.period) {
            (Some(stat), Some(period)) => text.push_str(&format!(" · {stat} over {period} s")),
            (Some(stat), None) => text.push_str(&format!(" · {stat}")),
            _ => {}
        }
        body.push(field("Metric", text));
    }
    for expression in &alarm.expressions {
        body.push(vec![Span::Bold("Expression:".into()), Span::Text(" ".into()), Span::Code(expression.clone())]);
    }
    if let Some(rule) = &alarm.rule {
        body.push(vec![Span::Bold("Rule:".into()), Span::Text(" ".into()), Span::Code(rule.clone())]);
    }
    match (&alarm.comparison, alarm.threshold, &alarm.threshold_metric_id) {
        (Some(op), _, Some(band)) => body.push(field("Threshold", format!("{} {band}", comparison(op)))),
        (Some(op), Some(t), None) => body.push(field("Threshold", format!("{} {}", comparison(op), number(t)))),
        (None, Some(t), _) => body.push(field("Threshold", number(t))),
        _ => {}
    }
    let place: Vec<String> =
        [alarm.region.clone(), alarm.account.as_ref().map(|a| format!("account {a}"))].into_iter().flatten().collect();
    if !place.is_empty() {
        body.push(field("Where", place.join(" · ")));
    }
    if let Some(time) = alarm.time {
        body.push(field("When", time.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    }
    let footer = match alarm.console_url() {
        Some(url) => vec![vec![Span::Link { text: "Open in CloudWatch".into(), url }]],
        None => Vec::new(),
    };
    let silent = match alarm.state {
        State::Ok => true,
        State::InsufficientData => insufficient != InsufficientData::Send,
        _ => false,
    };
    Doc { header, body, footer }.render(silent)
}

fn render_notification(n: &Notification) -> Rendered {
    let emoji = match n.severity {
        Severity::Info => "ℹ️",
        Severity::Warning => "⚠️",
        Severity::Critical => "🚨",
    };
    let header = vec![vec![Span::Text(format!("{emoji} ")), Span::Bold(n.title.clone())]];
    let mut body: Vec<Line> = Vec::new();
    if !n.text.is_empty() {
        body.extend(n.text.lines().map(|l| vec![Span::Text(l.to_owned())]));
    }
    if !n.fields.is_empty() {
        body.push(Vec::new());
        body.extend(n.fields.iter().map(|(k, v)| field(k, v.clone())));
    }
    if let Some(table) = &n.table {
        body.push(vec![Span::Pre(monospace_table(&table.columns, &table.rows))]);
    }
    let footer = vec![vec![Span::Italic(format!("openclaw-ops · {}", n.source))]];
    Doc { header, body, footer }.render(n.severity == Severity::Info)
}

fn monospace_table(columns: &[String], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        std::iter::once(columns.get(i).map_or(0, |c| c.chars().count()))
            .chain(rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())))
            .max()
            .unwrap_or(0)
    };
    let n = columns.len().max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let widths: Vec<usize> = (0..n).map(width).collect();
    let line = |cells: &[String]| {
        (0..n)
            .map(|i| {
                let cell = cells.get(i).map_or("", String::as_str);
                format!("{cell:<w$}", w = widths[i])
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    std::iter::once(line(columns)).chain(rows.iter().map(|r| line(r))).collect::<Vec<_>>().join("\n")
}

fn render_plain(subject: Option<&str>, text: &str) -> Rendered {
    let header =
        vec![vec![Span::Text("📨 ".into()), Span::Bold(subject.unwrap_or("Message on the ops topic").to_owned())]];
    let body = text.lines().map(|l| vec![Span::Text(l.to_owned())]).collect();
    Doc { header, body, footer: Vec::new() }.render(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> Alarm {
        Alarm {
            name: "cpu <b>high</b> & more".into(),
            description: Some("<a href=\"https://evil\">click</a>".into()),
            state: State::Alarm,
            previous: Some(State::Ok),
            reason: Some("x".repeat(10_000)),
            time: None,
            region: Some("eu-central-1".into()),
            account: None,
            arn: None,
            metrics: vec![],
            expressions: vec![],
            comparison: None,
            threshold: None,
            threshold_metric_id: None,
            rule: None,
        }
    }

    #[test]
    fn escapes_ampersand_first_then_angle_brackets() {
        assert_eq!(escape("a & <b> &lt;"), "a &amp; &lt;b&gt; &amp;lt;");
    }

    #[test]
    fn nothing_from_the_alarm_becomes_markup() {
        let r = render(&Message::Alarm(alarm()), InsufficientData::Silent);
        assert!(r.html.contains("<b>cpu &lt;b&gt;high&lt;/b&gt; &amp; more</b>"));
        assert!(r.html.contains("&lt;a href=&quot;https://evil&quot;&gt;click&lt;/a&gt;"));
        assert_eq!(r.html.matches("<a href=").count(), 1, "only our own console link");
    }

    #[test]
    fn long_reasons_are_cut_inside_the_body_keeping_header_and_link() {
        let r = render(&Message::Alarm(alarm()), InsufficientData::Silent);
        assert!(utf16_len(&r.plain) <= MAX_VISIBLE, "{}", utf16_len(&r.plain));
        assert!(utf16_len(&r.plain) > MAX_VISIBLE - 10, "cut no more than needed");
        assert!(r.plain.starts_with("🔴 ALARM · cpu <b>high</b> & more"));
        assert!(r.plain.ends_with("Open in CloudWatch"));
        assert!(r.plain.contains(CUT_MARK));
        assert!(r.html.ends_with("#alarmsV2:alarm/cpu%20%3Cb%3Ehigh%3C%2Fb%3E%20%26%20more\">Open in CloudWatch</a>"));
    }

    #[test]
    fn length_counts_utf16_units_of_visible_text() {
        let mut a = alarm();
        a.reason = Some("🔥".repeat(3000));
        let r = render(&Message::Alarm(a), InsufficientData::Silent);
        assert!(utf16_len(&r.plain) <= MAX_VISIBLE);
        assert!(r.html.chars().count() > r.plain.chars().count(), "markup is not counted");
    }

    #[test]
    fn ok_is_silent_and_insufficient_data_follows_configuration() {
        let mut a = alarm();
        a.state = State::Ok;
        assert!(render(&Message::Alarm(a.clone()), InsufficientData::Send).silent);
        a.state = State::InsufficientData;
        assert!(!render(&Message::Alarm(a.clone()), InsufficientData::Send).silent);
        assert!(render(&Message::Alarm(a.clone()), InsufficientData::Silent).silent);
        a.state = State::Alarm;
        assert!(!render(&Message::Alarm(a), InsufficientData::Silent).silent);
    }

    #[test]
    fn tables_are_aligned_monospace() {
        let t = monospace_table(
            &["id".into(), "what".into()],
            &[vec!["vol-1".into(), "kept".into()], vec!["v".into(), "x".into()]],
        );
        assert_eq!(t, "id     what\nvol-1  kept\nv      x");
    }
}
