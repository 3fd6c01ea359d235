//! latchd killed with `kill -9` while commands are being appended and
//! published, then restarted: the stream holds every event of the log
//! exactly once, in order.

use latch_e2e::{Latchd, stream_positions};
use serde_json::json;

#[test]
fn kill_9_between_append_and_publish_loses_and_duplicates_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let latchd = Latchd::start_in(temp.path());
    let admin = latchd.admin_token();
    let url = latchd.url.clone();

    // A writer hammering latchd from another thread until it dies.
    let writer = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        for n in 0.. {
            let sent = agent
                .post(format!("{url}/v1/accounts"))
                .header("Authorization", format!("Bearer {admin}"))
                .send_json(json!({ "name": format!("crash-{n}"), "role": "auditor" }));
            if sent.is_err() {
                return n;
            }
        }
        unreachable!()
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    let nats = latchd.kill_9();
    let attempted = writer.join().unwrap();
    assert!(
        attempted > 10,
        "the writer got going before the kill ({attempted})"
    );

    let latchd = Latchd::start_with(temp.path(), nats);
    let head = latchd.head();
    let started = std::time::Instant::now();
    loop {
        let positions = stream_positions(&latchd.nats().url());
        if positions.len() as u64 >= head {
            assert_eq!(
                positions,
                (1..=head).collect::<Vec<_>>(),
                "every event once, in order"
            );
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the relay never caught up: {} of {head}",
            positions.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A restarted relay recognises its own (batch-signed) events in the
/// stream and resumes after the last one. (Had it not, it would publish the
/// whole log again; JetStream's duplicate window hides that for two
/// minutes, so the stream alone cannot show it in a test.)
#[test]
fn a_restarted_relay_resumes_after_the_events_the_stream_holds() {
    let temp = tempfile::tempdir().unwrap();
    let latchd = Latchd::start_in(temp.path());
    let admin = latchd.admin_token();
    for n in 0..5 {
        let created = latchd.post("/v1/accounts", &admin, json!({ "name": format!("r-{n}"), "role": "auditor" }));
        assert_eq!(created.status, 201, "{:?}", created.body);
    }
    let head = latchd.head();
    latch_e2e::eventually("the relay published the log", || {
        latchd.metric("latch_relay_published_position") == head
    });
    let nats = latchd.kill_9();
    let latchd = Latchd::start_with(temp.path(), nats);
    latch_e2e::eventually("the relay reconnected", || {
        latchd.metric("latch_relay_connected") == 1
    });
    // The log without terminal colours.
    let mut logs = String::new();
    let mut escaped = false;
    for c in latchd.logs().chars() {
        match c {
            '\u{1b}' => escaped = true,
            'm' if escaped => escaped = false,
            _ if escaped => {}
            c => logs.push(c),
        }
    }
    assert!(
        logs.contains(&format!("resume_after={head}")),
        "the relay resumed after position {head}:\n{logs}"
    );
}
