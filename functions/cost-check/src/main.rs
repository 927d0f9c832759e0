//! The bootstrap: the handler built once per container (configuration, SDK, clients), then the
//! runtime's loop ([`openclaw_ops_shared::serve`]). One thread: the function's work is waiting on
//! AWS, and at its memory size Lambda gives it less than a vCPU (docs/ARCHITECTURE.md, "Init").

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    openclaw_ops_shared::serve::<cost_check::Handler>().await
}
