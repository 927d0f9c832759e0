//! The gateway's user, played on this machine: the backup and restore scripts run as the state
//! directory's owner and refuse one root owns, so every test state directory belongs to this user
//! (created once, as the tests run as root), and the "gateway" that writes to it runs as it too.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The stand-in for the gateway's `openclaw` user.
pub const NAME: &str = "openclaw-testbed";

#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// This machine's stand-in for the gateway's user: `openclaw-testbed` (made here, with its home
/// under /home as the gateway's is) when the tests run as root; the user running them otherwise.
pub fn owner() -> &'static Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    OWNER.get_or_init(|| {
        let root = id(&["-u"], None) == "0";
        let name = if root { NAME.to_owned() } else { id(&["-un"], None) };
        if root && Command::new("id").arg(NAME).output().map(|o| !o.status.success()).unwrap_or(true) {
            // Another test binary may make it at the same moment: useradd then fails, and `id` decides.
            let _ = Command::new("useradd")
                .args(["--create-home", "--user-group", "--shell", "/usr/sbin/nologin", NAME])
                .output();
        }
        let uid = id(&["-u"], Some(&name)).parse().expect("the test user's uid");
        let gid = id(&["-g"], Some(&name)).parse().expect("the test user's gid");
        let passwd = Command::new("getent").args(["passwd", &name]).output().expect("getent");
        let passwd = String::from_utf8_lossy(&passwd.stdout);
        let home = passwd.trim().split(':').nth(5).unwrap_or("/").to_owned();
        Owner { name, uid, gid, home }
    })
}

fn id(args: &[&str], user: Option<&str>) -> String {
    let out = Command::new("id").args(args).args(user).output().expect("id");
    assert!(out.status.success(), "id {args:?} {user:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Gives `path` and everything under it to the owner (no symlink followed).
pub fn give(path: &Path) {
    let o = owner();
    let status = Command::new("chown").args(["-R", "-h", &format!("{}:{}", o.uid, o.gid)]).arg(path).status().unwrap();
    assert!(status.success(), "chown -R {}", path.display());
}

/// Runs `command` as the owner (the tests run as root; otherwise as the user running them).
pub fn as_owner(command: &mut Command) -> &mut Command {
    let o = owner();
    command.uid(o.uid).gid(o.gid)
}
