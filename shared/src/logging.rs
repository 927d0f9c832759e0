//! The process's log lines: tracing to stdout, in the shape and at the level Lambda's advanced
//! logging controls ask for.
//!
//! The same contract as `lambda_runtime`'s `init_default_subscriber`, without its `EnvFilter`:
//! that one links a regex engine (~250 KiB in every bootstrap) for per-module directives the
//! suite never uses. `RUST_LOG` is therefore a level only (`debug`, `off`, …), not a directive list.

use tracing::level_filters::LevelFilter;

use crate::config::Env;

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`AWS_LAMBDA_LOG_FORMAT=JSON`, what the template configures).
    Json,
    /// tracing's text lines.
    Text,
}

/// The level and format `env` asks for: `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's
/// `ApplicationLogLevel`), else `RUST_LOG`, else INFO; an unknown level is INFO, Lambda's FATAL is
/// ERROR (tracing has nothing above it).
pub fn settings(env: &impl Env) -> (LevelFilter, Format) {
    let level = env
        .get("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| env.get("RUST_LOG"))
        .map(|level| match level.trim() {
            fatal if fatal.eq_ignore_ascii_case("fatal") => LevelFilter::ERROR,
            level => level.parse().unwrap_or(LevelFilter::INFO),
        })
        .unwrap_or(LevelFilter::INFO);
    let format = match env.get("AWS_LAMBDA_LOG_FORMAT") {
        Some(format) if format.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Text,
    };
    (level, format)
}

/// Installs the process's subscriber. Once per process, before anything logs.
pub fn init(env: &impl Env) {
    let (level, format) = settings(env);
    // Lambda stamps each line with the time it received it; the request id comes from the
    // runtime's span.
    let subscriber = tracing_subscriber::fmt().with_max_level(level).with_target(false).without_time();
    match format {
        Format::Json => subscriber.json().init(),
        Format::Text => subscriber.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn settings_of(vars: &[(&str, &str)]) -> (LevelFilter, Format) {
        settings(&MapEnv::new(vars))
    }

    #[test]
    fn info_and_text_by_default() {
        assert_eq!(settings_of(&[]), (LevelFilter::INFO, Format::Text));
    }

    #[test]
    fn lambdas_level_wins_over_rust_log() {
        let vars = [("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "off")];
        assert_eq!(settings_of(&vars).0, LevelFilter::DEBUG);
    }

    #[test]
    fn rust_log_is_a_level() {
        assert_eq!(settings_of(&[("RUST_LOG", "off")]).0, LevelFilter::OFF);
        assert_eq!(settings_of(&[("RUST_LOG", "warn")]).0, LevelFilter::WARN);
    }

    #[test]
    fn fatal_is_error_and_nonsense_is_info() {
        assert_eq!(settings_of(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).0, LevelFilter::ERROR);
        assert_eq!(settings_of(&[("RUST_LOG", "aws_smithy=debug")]).0, LevelFilter::INFO);
    }

    #[test]
    fn json_when_lambda_says_json_in_any_case() {
        assert_eq!(settings_of(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).1, Format::Json);
        assert_eq!(settings_of(&[("AWS_LAMBDA_LOG_FORMAT", "json")]).1, Format::Json);
        assert_eq!(settings_of(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).1, Format::Text);
    }
}
