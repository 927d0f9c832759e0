use std::borrow::Cow;
use std::fmt;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

/// The suite's error: which part failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The function's configuration (environment) is missing or malformed; nothing was done.
    #[error("configuration: {0}")]
    Config(String),
    /// The invocation's payload is not something this function accepts; nothing was done.
    #[error("bad input: {0}")]
    Input(String),
    /// An AWS call failed after the SDK's retries (or answered without what it must hold).
    #[error(transparent)]
    Aws(#[from] Failure),
    /// The run finished but some of its steps failed; the report says which.
    #[error("{0}")]
    Incomplete(String),
}

impl Error {
    /// An error of an AWS call that carries no error code (a presigning, a body read): its chain.
    pub fn aws<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + 'static,
    {
        Error::Aws(Failure::call(operation, error_chain(&err)))
    }
}

/// Why something failed, as data a report can carry and a reader can filter on: the AWS call
/// (`ec2:CreateSnapshot`) when one failed, AWS's error code when it gave one
/// (`UnauthorizedOperation`), and the message. Its text is `ec2:CreateSnapshot failed:
/// UnauthorizedOperation: message`, or the message alone for a failure that is no call's (a
/// replacement that stopped, a check that did not pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", Text(self))]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

impl Failure {
    /// An AWS call that failed without an error answer of AWS's: an answer without what it must
    /// hold, a call not attempted before the deadline.
    pub fn call(operation: &'static str, message: impl Into<String>) -> Self {
        Failure { operation: Some(Cow::Borrowed(operation)), code: None, message: message.into() }
    }

    /// An SDK error: AWS's code and message when the service answered, else the error's chain
    /// (a timeout, a refused connection; the `Display` of an `SdkError` alone says only
    /// "service error").
    pub fn from_sdk<E>(operation: &'static str, err: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let message = match (err.code(), err.message()) {
            (Some(_), Some(message)) => message.to_owned(),
            (Some(_), None) => String::new(),
            _ => error_chain(err),
        };
        Failure { operation: Some(Cow::Borrowed(operation)), code: err.code().map(str::to_owned), message }
    }

    /// AWS's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// `Code: message` (or either alone): the failure without its operation, for a line that
    /// already names the call.
    pub fn detail(&self) -> String {
        Detail(self).to_string()
    }

    /// The same failure with `context` (which resource, which command) before its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message =
            if self.message.is_empty() { context.to_string() } else { format!("{context}: {}", self.message) };
        self
    }
}

/// A failure that is no AWS call's, in words.
impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { operation: None, code: None, message }
    }
}

/// An [`Error`] as a report's failure: an AWS call's as it is, any other as its text.
impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::Aws(failure) => failure,
            other => Failure::from(other.to_string()),
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_owned())
    }
}

struct Text<'a>(&'a Failure);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.operation {
            Some(operation) => write!(f, "{operation} failed: {}", Detail(self.0)),
            None => write!(f, "{}", Detail(self.0)),
        }
    }
}

struct Detail<'a>(&'a Failure);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.code, self.0.message.as_str()) {
            (Some(code), "") => write!(f, "{code}"),
            (Some(code), message) => write!(f, "{code}: {message}"),
            (None, message) => write!(f, "{message}"),
        }
    }
}

/// The suite's one SDK error mapper: `map_err(sdk("ec2:DescribeInstances"))?` in a function that
/// answers [`Error`] or [`Failure`].
pub fn sdk<E>(operation: &'static str) -> impl Fn(E) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Failure::from_sdk(operation, &e)
}

/// The whole source chain of an error on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// What Lambda reports as the invocation's error (`errorType`, `errorMessage`).
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        let error_type = match &err {
            Error::Config(_) => "ConfigError",
            Error::Input(_) => "InputError",
            Error::Aws { .. } => "AwsError",
            Error::Incomplete(_) => "IncompleteRun",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("service error")]
    struct Service(ErrorMetadata);

    impl ProvideErrorMetadata for Service {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    #[test]
    fn an_sdk_error_keeps_its_operation_code_and_message_apart() {
        let err = Service(ErrorMetadata::builder().code("UnauthorizedOperation").message("not allowed").build());
        let failure = Failure::from_sdk("ec2:CreateSnapshot", &err);
        assert_eq!(failure.code(), Some("UnauthorizedOperation"));
        assert_eq!(failure.message, "not allowed");
        assert_eq!(failure.to_string(), "ec2:CreateSnapshot failed: UnauthorizedOperation: not allowed");
        assert_eq!(failure.detail(), "UnauthorizedOperation: not allowed");
        let json = serde_json::to_value(&failure).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"operation": "ec2:CreateSnapshot", "code": "UnauthorizedOperation", "message": "not allowed"})
        );
        assert_eq!(Error::from(failure).to_string(), "ec2:CreateSnapshot failed: UnauthorizedOperation: not allowed");
    }

    #[test]
    fn an_error_without_a_code_keeps_its_chain_and_no_code() {
        let err = Service(ErrorMetadata::builder().build());
        let failure = Failure::from_sdk("s3:GetObject", &err);
        assert_eq!((failure.code(), failure.message.as_str()), (None, "service error"));
        assert_eq!(serde_json::to_value(&failure).unwrap().get("code"), None);
        let plain = Failure::from("the replacement i-new is terminated");
        assert_eq!(plain.to_string(), "the replacement i-new is terminated");
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"message": "the replacement i-new is terminated"})
        );
        let bare = Failure::call("ec2:CreateSnapshot", "not attempted: the run reached its deadline");
        assert_eq!(bare.to_string(), "ec2:CreateSnapshot failed: not attempted: the run reached its deadline");
    }
}
