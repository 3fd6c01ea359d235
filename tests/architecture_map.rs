//! `docs/architecture.md` tells a newcomer where things are ("Where to find
//! things"): every path it names there exists, so the map cannot go stale
//! when a room is moved.

use std::path::Path;

#[test]
fn every_path_on_the_architecture_map_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let section = text
        .split("## Where to find things")
        .nth(1)
        .expect("docs/architecture.md has a section \"Where to find things\"");
    let section = section.split("\n## ").next().unwrap();
    let mut checked = 0;
    for quoted in section.split('`').skip(1).step_by(2) {
        if !quoted.starts_with("crates/") {
            continue;
        }
        // `…/<family>.rs` names a folder of such files.
        let path = match quoted.find('<') {
            Some(at) => &quoted[..at],
            None => quoted,
        };
        assert!(
            root.join(path).exists(),
            "docs/architecture.md names {quoted}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 10, "the map names the main rooms ({checked} paths)");
}
