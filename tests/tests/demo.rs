//! The README's first command runs the demo; this keeps it working: it must finish and show what the
//! README says it shows.

use integration_tests::runtime::binary;

#[test]
fn the_demo_shows_each_function_working() {
    // The demo's own binary is built with the functions (cargo build --workspace --bins).
    let demo = binary("demo").unwrap();
    let out = std::process::Command::new(demo).current_dir(integration_tests::workspace_root()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for shown in [
        "changed nothing",
        "Same event again (EventBridge is at-least-once): created 0",
        "Off-region copy to us-west-2",
        "copied 14 snapshot(s), encrypted with the DR key, pruned there by the same plan; the same run again: copied 0.",
        "created 2, deleted 0, held 2 (limit 1); notified critical: EBS snapshots: circuit breaker held 2",
        "\"confirm_deletes\":3} -> refused: bad input: confirm_deletes is 3 but the plan now deletes 2",
        "{\"action\":\"prune\",\"confirm_deletes\":2} -> deleted 2",
        "openclaw-data  3 snapshot(s)",
        "scratch        0 snapshot(s)",
        "snapshots that are not ours: 1301 (untouched)",
        "read back and verified",
        "bucket drift     0 finding(s)",
        "same event again already done (0 backup made)",
        "openclaw.json there is the one from before the update: yes",
        "the two-minute warning: final snapshot snap-",
        "attached to i-",
        "moved to i-",
        "(no second replacement)",
        "NAT Gateway",
        "alert",
        "as a phone shows them",
        "Backup restored beside the live state",
        "ALARM · openclaw-gateway-cpu-high",
    ] {
        assert!(stdout.contains(shown), "the demo no longer shows {shown:?}:\n{stdout}");
    }
}
