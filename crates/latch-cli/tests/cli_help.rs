//! The CLI's own checks that need no server. (Its end-to-end tests are in
//! the workspace's tests/, against a real latchd.)

use std::process::Command;

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["account", "--help"],
        vec!["account", "create", "--help"],
        vec!["token", "issue", "--help"],
        vec!["token", "rotate", "--help"],
        vec!["role", "set", "--help"],
        vec!["policy", "set", "--help"],
        vec!["events", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "latch {args:?} --help failed");
        assert!(!output.stdout.is_empty());
    }
}

#[test]
fn unreachable_latchd_is_exit_code_8_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["--url", "http://127.0.0.1:9", "account", "list"])
        .env("LATCH_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach latchd"));
}

#[test]
fn a_missing_token_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["account", "list"])
        .env_remove("LATCH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LATCH_TOKEN"));
}
