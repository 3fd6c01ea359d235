//! `latch audit verify` through the real binaries: online against latchd,
//! offline against its data directory while it runs, and on a copy in which
//! one byte of one stored event was changed.

use latch_e2e::{Latchd, account_with_token, ok, stderr, stdout};
use serde_json::Value;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Changes one byte of the stored record of the event at `position` (in
/// its JSON, after the 32-byte hash) in the log under `data_dir`.
fn alter_event(data_dir: &std::path::Path, position: u64) {
    let log = data_dir.join("log");
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
    let events = db.cf_handle("events").unwrap();
    let mut value = db
        .get_cf(events, position.to_be_bytes())
        .unwrap()
        .expect("the event exists");
    let at = value.len() - 3;
    value[at] ^= 0x01;
    db.put_cf(events, position.to_be_bytes(), value).unwrap();
}

#[test]
fn the_chain_verifies_online_and_offline_and_an_altered_byte_is_named() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    for name in ["ci", "deploy", "backup"] {
        account_with_token(&latchd, &admin, name, "auditor", None);
    }
    let head = latchd.head();

    let online: Value = serde_json::from_str(&ok(
        latchd.latch(Some(&admin), &["audit", "verify", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(online["verdict"], "intact");
    assert_eq!(online["checked"], head);
    assert_eq!(online["head"], head);
    let table = ok(latchd.latch(Some(&admin), &["audit", "verify"]));
    assert!(
        table.starts_with(&format!("intact: {head} events")),
        "{table}"
    );

    // Offline, while latchd runs on the same data directory, no token needed.
    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();
    let offline: Value = serde_json::from_str(&ok(latchd.latch(
        None,
        &[
            "audit",
            "verify",
            "--data-dir",
            &data_dir,
            "--output",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(offline, online, "the same verdict and head hash either way");

    // A copy of the data directory with one byte of event 3 changed.
    latchd.stop();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&latchd.data_dir, copy.path());
    alter_event(copy.path(), 3);
    let copy_dir_text = copy.path().to_str().unwrap();
    let broken = latchd.latch(None, &["audit", "verify", "--data-dir", copy_dir_text]);
    assert_eq!(
        broken.status.code(),
        Some(9),
        "exit code 9 for a tampered log; stderr: {}",
        stderr(&broken)
    );
    assert!(
        stdout(&broken).starts_with("BROKEN at position 3:"),
        "{}",
        stdout(&broken)
    );
    let as_json: Value = serde_json::from_str(&stdout(&latchd.latch(
        None,
        &[
            "audit",
            "verify",
            "--data-dir",
            copy_dir_text,
            "--output",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(as_json["verdict"], "broken");
    assert_eq!(as_json["position"], 3);

    // Investigations replay through the chain check: no answer rests on the
    // altered record, and each says where the chain broke. (Before the
    // checkpoint latchd saved at the head when it stopped: from there on,
    // an answer starts from the checkpoint, which was made from the
    // unaltered log and carries the chain hash there; see below.)
    let head_text = (head - 1).to_string();
    let ci_token = {
        let tokens = latchd.latch(
            None,
            &[
                "audit",
                "events",
                "--account",
                "ci",
                "--type",
                "token.issued",
                "--data-dir",
                &data_dir,
                "--output",
                "ndjson",
            ],
        );
        let last = stdout(&tokens).lines().last().map(str::to_owned).unwrap();
        serde_json::from_str::<Value>(&last).unwrap()["data"]["token_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for args in [
        vec!["audit", "state", "--at", head_text.as_str()],
        vec![
            "audit",
            "who-can",
            "tokens:read",
            "--at",
            head_text.as_str(),
        ],
        // A token's story reads only its own events, through the index
        // (ADR 0026), each checked against its stored hash: event 3, ci's
        // creation, is one of them.
        vec!["audit", "token", ci_token.as_str()],
    ] {
        let mut args = args;
        args.extend_from_slice(&["--data-dir", copy_dir_text]);
        let refused = latchd.latch(None, &args);
        assert_eq!(
            refused.status.code(),
            Some(9),
            "{args:?}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("broken at position 3"),
            "{args:?}: {}",
            stderr(&refused)
        );
        // The intact original answers.
        let intact_args: Vec<&str> = args[..args.len() - 1]
            .iter()
            .copied()
            .chain([data_dir.as_str()])
            .collect();
        ok(latchd.latch(None, &intact_args));
    }

    // At the head, the answer comes from the checkpoint: the state the
    // unaltered log gave, the same as the original's.
    let at_head = (head).to_string();
    let from_checkpoint = ok(latchd.latch(None, &["audit", "state", "--at", &at_head, "--data-dir", copy_dir_text, "--output", "ndjson"]));
    let original = ok(latchd.latch(None, &["audit", "state", "--at", &at_head, "--data-dir", &data_dir, "--output", "ndjson"]));
    assert_eq!(from_checkpoint, original);

    // The original is untouched.
    ok(latchd.latch(None, &["audit", "verify", "--data-dir", &data_dir]));
    let missing = latchd.latch(
        None,
        &["audit", "verify", "--data-dir", "/nonexistent/latch"],
    );
    assert_eq!(
        missing.status.code(),
        Some(2),
        "a bad --data-dir is a usage error: {}",
        stderr(&missing)
    );
}

/// Replaces the checkpoint at the head of the log under `data_dir` with
/// one that keeps its position and chain hash but says `account` was
/// disabled: what someone with the disk would write to make investigations
/// lie without touching the chained events.
fn forge_checkpoint(data_dir: &std::path::Path, account: &str) -> u64 {
    let log = data_dir.join("log");
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
    let snapshots = db.cf_handle("snapshots").unwrap();
    let (key, bytes) = db
        .iterator_cf(snapshots, rocksdb::IteratorMode::End)
        .next()
        .unwrap()
        .unwrap();
    let (mut state, hash) = latch_audit::decode_checkpoint(&bytes).expect("latchd's checkpoint");
    let position = state.position();
    let account_id = state.accounts().find(|a| a.name.as_str() == account).unwrap().id;
    let forged = latch_core::RecordedEvent {
        position,
        version: 99,
        envelope: latch_core::EventEnvelope {
            id: latch_core::EventId::new(),
            at: chrono::Utc::now(),
            actor: latch_core::Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event: latch_core::Event::AccountDisabled {
                account_id,
                reason: "forged".into(),
            },
        },
    };
    latch_core::evolve(&mut state, &forged);
    assert_eq!(state.position(), position);
    db.put_cf(snapshots, key, latch_audit::encode_checkpoint(&state, hash)).unwrap();
    position.get()
}

#[test]
fn a_forged_checkpoint_is_named_by_verify() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    account_with_token(&latchd, &admin, "ci", "auditor", None);
    latchd.stop(); // saves a checkpoint at the head
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&latchd.data_dir, copy.path());
    let copy_text = copy.path().to_str().unwrap();
    ok(latchd.latch(None, &["audit", "verify", "--data-dir", copy_text]));
    let position = forge_checkpoint(copy.path(), "ci");
    // The forgery keeps the chain hash, so a replay takes it...
    let lie = ok(latchd.latch(None, &["audit", "state", "--data-dir", copy_text, "--output", "ndjson"]));
    assert!(lie.contains("forged"), "the forged checkpoint was not used: {lie}");
    // ...a plain verify (the chain, and each checkpoint's chain hash) does
    // not see it...
    ok(latchd.latch(None, &["audit", "verify", "--data-dir", copy_text]));
    // ...and verify --checkpoints, which replays the log against every
    // checkpoint, names it.
    let verdict = latchd.latch(None, &["audit", "verify", "--data-dir", copy_text, "--checkpoints"]);
    assert_eq!(verdict.status.code(), Some(9), "{}", stdout(&verdict));
    assert!(
        stdout(&verdict).starts_with(&format!("BROKEN at position {position}:")),
        "{}",
        stdout(&verdict)
    );
    assert!(stdout(&verdict).contains("checkpoint"), "{}", stdout(&verdict));
}

#[test]
fn an_export_verifies_without_latch_and_an_edited_export_is_named() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    for name in ["ci", "deploy"] {
        account_with_token(&latchd, &admin, name, "auditor", None);
    }
    let head = latchd.head();
    let dir = tempfile::tempdir().unwrap();
    let online = dir.path().join("online.ndjson");
    let offline = dir.path().join("offline.ndjson");
    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();
    ok(latchd.latch(
        Some(&admin),
        &["audit", "export", "--file", online.to_str().unwrap()],
    ));
    ok(latchd.latch(
        None,
        &[
            "audit",
            "export",
            "--data-dir",
            &data_dir,
            "--file",
            offline.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&online).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&offline).unwrap(),
        "online and offline exports are the same bytes"
    );
    assert_eq!(
        text.lines().count() as u64,
        head + 2,
        "a header, every event, a closing line"
    );

    // Verified with nothing but the file (no token, no latchd).
    let verdict: Value = serde_json::from_str(&ok(latchd.latch(
        None,
        &[
            "audit",
            "verify",
            "--file",
            online.to_str().unwrap(),
            "--output",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(verdict["verdict"], "intact");
    assert_eq!(verdict["events"], head);
    let chain: Value = serde_json::from_str(&ok(
        latchd.latch(Some(&admin), &["audit", "verify", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(
        verdict["last_hash"], chain["head_hash"],
        "the export ends at the live log's head hash"
    );

    // A time range: nothing before the first event; everything since it.
    let none = latchd.latch(
        Some(&admin),
        &["audit", "export", "--until", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(none.status.code(), Some(5), "{}", stderr(&none));

    // One character of one event changed in the file.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("auditor", "admin", 1);
    assert_ne!(lines[3], text.lines().nth(3).unwrap(), "the edit landed");
    let edited = dir.path().join("edited.ndjson");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();
    let broken = latchd.latch(
        None,
        &["audit", "verify", "--file", edited.to_str().unwrap()],
    );
    assert_eq!(broken.status.code(), Some(9), "{}", stderr(&broken));
    assert!(
        stdout(&broken).starts_with("BROKEN at line 4 (position 3)"),
        "{}",
        stdout(&broken)
    );
    // Cut short: the closing line is missing.
    std::fs::write(
        &edited,
        text.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let cut = latchd.latch(
        None,
        &["audit", "verify", "--file", edited.to_str().unwrap()],
    );
    assert_eq!(cut.status.code(), Some(9));
    assert!(stdout(&cut).contains("cut short"), "{}", stdout(&cut));
}

/// Deletes every index entry that points at `position`: someone with the
/// disk hiding that event from every indexed answer. Returns how many.
fn hide_from_index(data_dir: &std::path::Path, position: u64) -> usize {
    let log = data_dir.join("log");
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
    let index = db.cf_handle("index").expect("latchd indexes its log");
    let doomed: Vec<Box<[u8]>> = db
        .iterator_cf(index, rocksdb::IteratorMode::Start)
        .map(|item| item.unwrap().0)
        .filter(|key| key.ends_with(&position.to_be_bytes()))
        .collect();
    for key in &doomed {
        db.delete_cf(index, key).unwrap();
    }
    doomed.len()
}

fn drop_index(data_dir: &std::path::Path) {
    let log = data_dir.join("log");
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &log).unwrap();
    let mut db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log, names).unwrap();
    db.drop_cf("index").unwrap();
}

#[test]
fn a_damaged_index_is_named_by_verify_and_mended_by_reindex_and_a_missing_one_rebuilt() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, token, _) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    ok(latchd.latch(Some(&admin), &["token", "rotate", &token, "--grace", "1m"]));
    let head = latchd.head();
    latchd.stop();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&latchd.data_dir, copy.path());
    let dir = copy.path().to_str().unwrap().to_owned();
    let story = || {
        ok(latchd.latch(
            None,
            &[
                "audit",
                "token",
                &token,
                "--data-dir",
                &dir,
                "--output",
                "ndjson",
            ],
        ))
    };
    // The rotation's successor is in the story only through the index:
    // its issue is in the successor's own stream.
    let successor_issued = story()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|entry| entry["about"] == "successor")
        .and_then(|entry| entry["position"].as_u64())
        .expect("the story names the successor's issue");
    let successor = format!("\"position\":{successor_issued}");
    let sound = ok(latchd.latch(None, &["audit", "verify", "--data-dir", &dir, "--index"]));
    assert!(sound.contains("index: sound"), "{sound}");

    // The attack: the successor vanishes from the token's story...
    assert!(hide_from_index(copy.path(), successor_issued) > 0);
    assert!(!story().contains(&successor), "the story still read it: {}", story());
    // ...verify --index names the damage (the chain itself is intact)...
    let verdict = latchd.latch(None, &["audit", "verify", "--data-dir", &dir, "--index"]);
    assert_eq!(verdict.status.code(), Some(1), "{}", stdout(&verdict));
    assert!(stdout(&verdict).starts_with("intact"), "{}", stdout(&verdict));
    assert!(stdout(&verdict).contains("index: damaged"), "{}", stdout(&verdict));
    assert!(stderr(&verdict).contains("latch audit reindex"), "{}", stderr(&verdict));
    // ...and reindex mends it from the chained events.
    let reindexed = ok(latchd.latch(None, &["audit", "reindex", "--data-dir", &dir]));
    assert!(reindexed.starts_with(&format!("indexed {head} events")), "{reindexed}");
    assert!(story().contains(&successor), "{}", story());
    ok(latchd.latch(None, &["audit", "verify", "--data-dir", &dir, "--index"]));

    // Dropped outright: readers notice and read the whole log, and latchd
    // rebuilds it when it starts.
    drop_index(copy.path());
    assert!(story().contains(&successor), "{}", story());
    let missing = latchd.latch(None, &["audit", "verify", "--data-dir", &dir, "--index"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    assert!(stdout(&missing).contains("index: missing"), "{}", stdout(&missing));
    let mut restarted = Latchd::start_in(copy.path());
    restarted.stop();
    assert!(
        restarted.logs().contains("indexed the log"),
        "latchd did not rebuild the index: {}",
        restarted.logs()
    );
    let sound = ok(latchd.latch(None, &["audit", "verify", "--data-dir", &dir, "--index"]));
    assert!(sound.contains("index: sound"), "{sound}");
    assert!(story().contains(&successor), "{}", story());
}

/// latchd on `data_dir` with these flags, relaying to a NATS of its own.
fn latchd_with(data_dir: &std::path::Path, flags: &[&str]) -> Latchd {
    let nats = latch_testkit::NatsServer::start();
    let mut args = vec!["--nats-url".to_owned(), nats.url()];
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    Latchd::launch_with(data_dir, nats, "127.0.0.1", &args, &[], None)
}

/// ADR 0027: a log written in the JSON format, as every latchd before the
/// binary one wrote it, is read, verified and upgraded in place — by a
/// backup of it and by `latch audit upgrade` — with the same chain head
/// before and after, the same answers, and the same export; latchd then
/// serves it and writes binary records after the upgraded ones.
#[test]
fn a_json_log_is_read_verified_and_upgraded_with_the_same_chain_head() {
    let temp = tempfile::tempdir().unwrap();
    let mut latchd = latchd_with(temp.path(), &["--record-format", "json"]);
    let admin = latchd.admin_token();
    let (_, ci_token, _) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let (_, _, auditor) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let rotated = latchd.post(
        &format!("/v1/tokens/{ci_token}/rotate"),
        &admin,
        serde_json::json!({}),
    );
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let head = latchd.head();

    // A backup that upgrades its copy: same position and head hash as the
    // running log, which stays JSON. Only a holder of backup:create may ask
    // for one, and a malformed ask writes nothing.
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("upgraded");
    let to = backup.display().to_string();
    let forbidden = latchd.post("/v1/backup", &auditor, serde_json::json!({ "to": to, "upgrade_records": true }));
    assert_eq!(forbidden.status, 403, "{:?}", forbidden.body);
    let malformed = latchd.post("/v1/backup", &admin, serde_json::json!({ "to": to, "upgrade_records": "yes" }));
    assert_eq!(malformed.status, 400, "{:?}", malformed.body);
    assert!(!backup.exists(), "nothing was written");
    let taken = std::process::Command::new(latch_e2e::binary("latchd"))
        .args(["backup", "--upgrade-records", "--to"])
        .arg(&backup)
        .args(["--url", &latchd.url, "--data-dir"])
        .arg(&latchd.data_dir)
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", stderr(&taken));
    let said = stdout(&taken);
    assert!(
        said.contains(&format!("records rewritten in the binary format: {head}")),
        "{said}"
    );
    latchd.stop();

    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();
    let backup_dir = backup.to_str().unwrap().to_owned();
    let verify = |dir: &str| -> Value {
        serde_json::from_str(&ok(latchd.latch(
            None,
            &["audit", "verify", "--data-dir", dir, "--output", "json"],
        )))
        .unwrap()
    };
    let story = |dir: &str| {
        ok(latchd.latch(
            None,
            &[
                "audit",
                "token",
                &ci_token,
                "--data-dir",
                dir,
                "--output",
                "ndjson",
            ],
        ))
    };
    let export = |dir: &str| ok(latchd.latch(None, &["audit", "export", "--data-dir", dir]));
    let before = verify(&data_dir);
    assert_eq!(before["verdict"], "intact");
    assert_eq!(before["head"], head);
    assert!(
        said.contains(before["head_hash"].as_str().unwrap()),
        "{said}"
    );
    let story_before = story(&data_dir);
    assert!(story_before.lines().count() >= 2, "{story_before}");
    let export_before = export(&data_dir);
    assert_eq!(
        verify(&backup_dir),
        before,
        "the upgraded backup ends in the same head"
    );
    assert_eq!(story(&backup_dir), story_before);
    assert_eq!(
        export(&backup_dir),
        export_before,
        "exports carry the canonical records"
    );

    // In place, offline: every record was JSON; the head hash is unchanged.
    let upgrade = |latchd: &Latchd| -> Value {
        let args = ["audit", "upgrade", "--data-dir", &data_dir, "--output", "json"];
        serde_json::from_str(&ok(latchd.latch(None, &args))).unwrap()
    };
    let upgraded = upgrade(&latchd);
    assert_eq!(upgraded["rewritten"], head, "{upgraded}");
    assert_eq!(upgraded["records"]["json"], 0, "{upgraded}");
    assert_eq!(upgraded["head_hash_before"], before["head_hash"]);
    assert_eq!(upgraded["head_hash"], before["head_hash"]);
    assert_eq!(verify(&data_dir), before);
    assert_eq!(story(&data_dir), story_before);
    assert_eq!(export(&data_dir), export_before);
    let table = ok(latchd.latch(None, &["audit", "upgrade", "--data-dir", &data_dir]));
    assert!(
        table.starts_with("rewrote 0 records in the binary format"),
        "{table}"
    );
    assert!(
        table.contains(&format!("({head} were already, 0 kept as JSON)")),
        "{table}"
    );

    // latchd serves the upgraded log (its admin token still works) and
    // writes binary records from here on.
    let nats = latch_testkit::NatsServer::start();
    let mut latchd = Latchd::start_with(temp.path(), nats);
    let admin = latchd.admin_token();
    account_with_token(&latchd, &admin, "scanner", "auditor", None);
    latchd.stop();
    let again = upgrade(&latchd);
    assert_eq!(again["rewritten"], 0, "{again}");
    assert!(
        again["records"]["binary"].as_u64().unwrap() > head,
        "{again}"
    );

    // Back to JSON for a while (the way back to an older latchd), then
    // upgraded by latchd itself in the background while it serves.
    let mut latchd = latchd_with(temp.path(), &["--record-format", "json"]);
    account_with_token(&latchd, &admin, "json-again", "auditor", None);
    latchd.stop();
    let mut latchd = latchd_with(temp.path(), &["--upgrade-records"]);
    latch_e2e::eventually("latchd upgrades the JSON records", || {
        latchd
            .logs()
            .contains("records upgraded to the binary format")
    });
    let online: Value = serde_json::from_str(&ok(
        latchd.latch(Some(&admin), &["audit", "verify", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(online["verdict"], "intact", "{online}");
    let now = latchd.head();

    // The log is locked while latchd runs: no upgrade under it.
    let refused = latchd.latch(None, &["audit", "upgrade", "--data-dir", &data_dir]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--upgrade-records"),
        "{}",
        stderr(&refused)
    );
    latchd.stop();
    let last = upgrade(&latchd);
    assert_eq!(last["records"]["json"], 0, "{last}");
    assert_eq!(last["records"]["binary"], now, "{last}");
    assert_eq!(last["head_hash"], online["head_hash"], "{last}");
}
