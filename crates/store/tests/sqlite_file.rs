//! What only a SQLite database on disk meets: one process per file, and a disk that
//! fills up and frees again.

#[path = "store/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use common::team_and_integration;
use snowbound_core::{new_id, Incident, IncidentStatus, Severity, Team};
use snowbound_store::{SecretBox, SqliteStore, Store, StoreError};

fn incident(team: &Team, description: String) -> Incident {
    let now = Utc::now();
    Incident {
        id: new_id(),
        team_id: team.id,
        title: "disk".into(),
        description,
        severity: Severity::Minor,
        status: IncidentStatus::Open,
        attributes: Default::default(),
        resolve_comment: None,
        source_id: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_second_open_of_one_sqlite_file_is_refused_until_the_first_store_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let url = format!("sqlite://{}", path.display());
    let key = SecretBox::random();
    let first = SqliteStore::open(&url, key.clone()).await.unwrap();
    let err = SqliteStore::open(&url, key.clone())
        .await
        .err()
        .expect("a second store on the same file is refused");
    assert!(matches!(err, StoreError::InUse(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("another Snowbound process is using") && message.contains("one.db"),
        "{message}"
    );
    first.set_meta("still", "mine").await.unwrap();
    drop(first);
    // The lock goes with the last descriptor of the lock file. A child process forked
    // by the other test of this binary (mount, umount) shares our descriptors until it
    // execs, so the release may take a moment to show here.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let again = loop {
        match SqliteStore::open(&url, key.clone()).await {
            Ok(store) => break store,
            Err(StoreError::InUse(_)) if std::time::Instant::now() < deadline => {
                tokio::task::yield_now().await
            }
            Err(e) => panic!("reopening after the first store is gone: {e}"),
        }
    };
    assert_eq!(
        again.get_meta("still").await.unwrap().as_deref(),
        Some("mine")
    );
}

/// A tmpfs of its own, unmounted when dropped.
struct SmallDisk {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk {
            mount_point,
            _dir: dir,
        })
    }

    /// Writes a file until the disk has no room left.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.mount_point.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

fn url_on(disk: &Path) -> String {
    format!("sqlite://{}", disk.join("t.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_disk_was_full_writes_work_again_once_space_returns() {
    let disk = match SmallDisk::mount("2m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED after_the_disk_was_full_writes_work_again_once_space_returns: {why} (needs root)");
            return;
        }
    };
    let store = SqliteStore::open(&url_on(&disk.mount_point), SecretBox::random())
        .await
        .unwrap();
    let (team, _) = team_and_integration(&store).await;
    let filler = disk.fill();

    // Big enough that no write fits in what SQLite may still have allocated.
    let mut failed = 0;
    for _ in 0..20 {
        match store
            .create_incident(&incident(&team, "x".repeat(256 * 1024)), &[], &[])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Database(e)) => {
                failed += 1;
                eprintln!("full disk: {e}");
            }
            Err(e) => panic!("a full disk is a database error, got {e}"),
        }
        if store.check_writable().await.is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "the full disk refused no write");

    std::fs::remove_file(&filler).unwrap();
    let written = incident(&team, "after".into());
    store.create_incident(&written, &[], &[]).await.unwrap();
    store.check_writable().await.unwrap();
    store.set_meta("after", "yes").await.unwrap();
    assert_eq!(
        store.get_incident(written.id).await.unwrap().description,
        "after"
    );
    assert_eq!(
        store.get_meta("after").await.unwrap().as_deref(),
        Some("yes")
    );
}
