use std::fmt;

/// The suite's error: which part failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The function's configuration (environment) is missing or malformed; nothing was done.
    #[error("configuration: {0}")]
    Config(String),
    /// The invocation's payload is not something this function accepts; nothing was done.
    #[error("bad input: {0}")]
    Input(String),
    /// An AWS call failed after the SDK's retries.
    #[error("{operation} failed: {message}")]
    Aws { operation: &'static str, message: String },
    /// The run finished but some of its steps failed; the report says which.
    #[error("{0}")]
    Incomplete(String),
}

impl Error {
    /// An AWS SDK error, flattened to its code and message (the `Display` of an `SdkError` alone
    /// says only "service error").
    pub fn aws<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + 'static,
    {
        Error::Aws { operation, message: error_chain(&err) }
    }
}

/// Maps an SDK error to [`Error::Aws`] as `Code: message` (for `map_err(sdk("ec2:DescribeInstances"))`).
pub fn sdk<E>(operation: &'static str) -> impl Fn(E) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Error::Aws { operation, message: SdkErrorDisplay(&e).to_string() }
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

/// A display adapter for SDK errors: `Code: message` when the service said so, else the chain.
pub struct SdkErrorDisplay<'a, E>(pub &'a E);

impl<E> fmt::Display for SdkErrorDisplay<'_, E>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.code(), self.0.message()) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(code), None) => write!(f, "{code}"),
            _ => write!(f, "{}", error_chain(self.0)),
        }
    }
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
