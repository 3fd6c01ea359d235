//! A service that embeds the verifier must never build RocksDB, and the bus
//! contract depends on the domain alone. Checked on the real dependency
//! graph, dev-dependencies included, as `cargo tree -p …` prints it.

fn tree(package: &str) -> Vec<String> {
    tree_with(package, &[])
}

/// As `tree`, with more `cargo tree` arguments.
fn tree_with(package: &str, more: &[&str]) -> Vec<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--package",
            package,
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(more)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_verifier_and_the_example_service_never_build_rocksdb() {
    for package in [
        "latch-verify",
        "certificate-service",
        "latch-bus",
        "latch-core",
    ] {
        let tree = tree(package);
        assert!(
            tree.iter().any(|line| line.starts_with(package)),
            "cargo tree printed no {package}"
        );
        let rocksdb: Vec<&String> = tree
            .iter()
            .filter(|line| line.contains("rocksdb"))
            .collect();
        assert!(
            rocksdb.is_empty(),
            "{package} pulls in RocksDB: {rocksdb:?}"
        );
    }
}

/// `RequirePermission` (axum, tower) and the snapshot's HTTP client (ureq)
/// are features of latch-verify: without them, a service builds the
/// verifier with no HTTP stack.
#[test]
fn the_verifier_without_its_features_has_no_http_stack() {
    let tree = tree_with(
        "latch-verify",
        &["--no-default-features", "--edges", "normal"],
    );
    assert!(
        tree.iter().any(|line| line.starts_with("latch-verify ")),
        "cargo tree printed no latch-verify"
    );
    let http: Vec<&String> = tree
        .iter()
        .filter(|line| {
            ["axum", "tower", "hyper", "ureq", "rocksdb"]
                .iter()
                .any(|name| line.starts_with(name))
        })
        .collect();
    assert!(
        http.is_empty(),
        "latch-verify without default features pulls in {http:?}"
    );
}

#[test]
fn the_bus_contract_depends_on_the_domain_alone() {
    let ours: Vec<String> = tree("latch-bus")
        .into_iter()
        .filter(|line| line.starts_with("latch") && !line.starts_with("latch-bus "))
        .collect();
    assert!(
        ours.iter().all(|line| line.starts_with("latch-core ")),
        "latch-bus depends on {ours:?}"
    );
}
