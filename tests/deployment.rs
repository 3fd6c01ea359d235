//! The container files: docker-compose.yml must validate with Docker
//! Compose as written, and both it and the Dockerfile must name binaries
//! and settings that exist.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker compose` (v2) when it is installed, else `docker-compose` (v1,
/// Debian's package, which scripts/prereqs installs).
fn compose(args: &[&str]) -> std::process::Output {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        Command::new("docker-compose")
    };
    command
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "neither `docker compose` nor `docker-compose` runs ({e}): install one \
                 (`sudo apt-get install docker-compose`; scripts/prereqs does this)"
            )
        })
}

#[test]
fn docker_compose_config_validates() {
    let checked = compose(&["config", "-q"]);
    assert!(
        checked.status.success(),
        "docker compose config: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let services = compose(&["config", "--services"]);
    let services = String::from_utf8_lossy(&services.stdout);
    let mut names: Vec<&str> = services.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["certificate-service", "latchd", "nats"]);
    let resolved = compose(&["config"]);
    let resolved = String::from_utf8_lossy(&resolved.stdout);
    for expected in [
        "--jetstream", // NATS with JetStream …
        "nats-data:",  // … on a volume
        "LATCH_NATS_URL: nats://nats:4222",
        "latch-data:", // latchd's log on a volume
        "CERTIFICATE_SERVICE_LISTEN: 0.0.0.0:7430",
    ] {
        assert!(
            resolved.contains(expected),
            "{expected:?} missing from:\n{resolved}"
        );
    }
}

#[test]
fn the_dockerfile_builds_and_ships_the_binaries_that_exist() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("AS build"), "multi-stage");
    assert!(
        dockerfile.contains("clang libclang-dev"),
        "RocksDB's bindings need libclang"
    );
    assert!(dockerfile.contains("--locked -p latchd -p latch-cli -p certificate-service"));
    for binary in ["latchd", "latch", "certificate-service"] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "{binary}"
        );
        assert!(
            latch_e2e::binary(binary).exists(),
            "the workspace builds {binary}"
        );
    }
    assert!(dockerfile.contains("USER latch"), "runs unprivileged");
    assert!(dockerfile.contains("ENTRYPOINT [\"latchd\"]"));
    // Every LATCH_* variable the image and compose file set is one latchd reads.
    let help = Command::new(latch_e2e::binary("latchd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    for text in [&dockerfile, &compose] {
        for variable in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("LATCH_"))
        {
            assert!(
                help.contains(variable),
                "{variable} is not a latchd setting"
            );
        }
    }
}
