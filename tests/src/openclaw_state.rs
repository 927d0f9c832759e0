//! A sample OpenClaw state directory (the 2026.8 layout) whose database a "gateway" keeps writing
//! to, for tests of the backup and restore scripts. It belongs to the gateway's stand-in user
//! ([`crate::state_owner`]), and the writer runs as that user, as the gateway does.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

pub struct StateDir {
    pub root: PathBuf,
    writer: Child,
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = self.writer.kill();
        let _ = self.writer.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An OpenClaw state directory (2026.8 layout) with a database a gateway keeps writing to.
pub fn state_dir(name: &str) -> StateDir {
    state_dir_seeded(name, None)
}

/// The same, its database started from `database` (one the real OpenClaw made, which its own
/// backup command accepts) before the writer adds its rows.
pub fn state_dir_seeded(name: &str, database: Option<&std::path::Path>) -> StateDir {
    let root = std::env::temp_dir().join(format!("openclaw-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let files: &[(&str, &[u8])] = &[
        // A configuration the real OpenClaw CLI accepts (its backup and doctor refuse unknown keys).
        ("openclaw.json", br#"{"gateway": {"port": 18789, "mode": "local"}}"#),
        (".env", b"ANTHROPIC_API_KEY=sk-test\n"),
        ("credentials/telegram.json", br#"{"bot": "123:abc"}"#),
        ("agents/main/agent/config.json", b"{}"),
        ("agents/main/sessions/2026-11-24.jsonl", b"{\"role\":\"user\",\"text\":\"hi & <bye>\"}\n"),
        ("agents/main/sessions/name with 'quotes' and spaces.jsonl", b"{}\n"),
        ("logs/gateway.log", b"a log line\n"),
        ("media/cache.bin", &[0u8, 1, 2, 3]),
    ];
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::fs::create_dir_all(root.join("state")).unwrap();
    if let Some(database) = database {
        std::fs::copy(database, root.join("state/openclaw.sqlite")).unwrap();
    }
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    crate::state_owner::give(&root);
    let writer = crate::state_owner::as_owner(&mut Command::new("/usr/bin/python3"))
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             db = sqlite3.connect(sys.argv[1]); db.execute('pragma journal_mode=wal')\n\
             db.execute('create table if not exists events (id integer primary key, body text)'); db.commit()\n\
             while True:\n    db.execute('insert into events (body) values (?)', ('x' * 200,)); db.commit(); time.sleep(0.002)\n",
        )
        .arg(root.join("state/openclaw.sqlite"))
        .spawn()
        .unwrap();
    // Let the live database reach a few hundred rows and a WAL file: counted, not timed, as a loaded
    // machine (the real OpenClaw CLI running in a neighbouring test) slows the writer down.
    let db = root.join("state/openclaw.sqlite");
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(100));
        let count = Command::new("sqlite3").arg(&db).arg(".timeout 2000").arg("select count(*) from events;").output();
        let rows: u64 =
            count.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or_default();
        if rows > 300 {
            break;
        }
    }
    StateDir { root, writer }
}

/// Every regular file under `root`, by path relative to it: for comparing a restored or unpacked
/// state directory with the original, byte for byte.
pub fn files_under(root: &std::path::Path) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root)?.to_string_lossy().into_owned(), std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

/// Unpacks a backup archive into `into` (created), with the system's tar as a person would.
pub fn untar(archive: &[u8], into: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(into)?;
    let tarball = into.with_extension("tar.gz");
    std::fs::write(&tarball, archive)?;
    let status = Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(into).status()?;
    std::fs::remove_file(&tarball)?;
    anyhow::ensure!(status.success(), "tar -xzf failed: {status}");
    Ok(())
}
