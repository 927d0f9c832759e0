//! The bootstrap: the handler built once per container (configuration, SDK, clients), then the
//! runtime's loop ([`openclaw_ops_shared::serve`]).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    openclaw_ops_shared::serve::<ebs_snapshots::Handler>().await
}
