//! The handler is not wired yet (in progress): the bootstrap refuses to start rather than pretend.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Err("spot-recovery: the handler is not implemented yet".into())
}
