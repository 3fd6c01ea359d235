//! The binary starts and explains itself. (Its end-to-end test, against a
//! real latchd and NATS, is in the workspace's tests/example_service.rs.)

#[test]
fn help_describes_the_settings() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_certificate-service"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("--nats-url") && text.contains("--listen"));
}
