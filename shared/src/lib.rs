//! What every openclaw-ops function needs: configuration from the environment, AWS client setup,
//! the suite's notification type and publisher, EMF metrics, tag and time helpers, and the error type.

pub mod aws;
pub mod backup;
pub mod config;
pub mod error;
pub mod function;
pub mod http;
pub mod invocation;
pub mod logging;
pub mod metrics;
pub mod notification;
pub mod run;
/// For the functions' tests only.
#[cfg(feature = "test-util")]
pub mod samples;
pub mod tags;
pub mod tls;

#[cfg(feature = "ec2")]
pub mod snapshot;

#[cfg(feature = "ssm")]
pub mod ssm;

pub use error::Error;
pub use function::{Function, serve};
