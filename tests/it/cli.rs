//! The command line with bad input: clear errors that name file, key and line.

use crate::cluster::bin;
use std::process::Command;

fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("bad.toml"), "the file is named: {err}");
    (out.status.code().unwrap_or(-1), err)
}

const GOOD: &str = r#"node_id = 1
data_dir = "/tmp/x"
peer_secret = "0123456789abcdef0123"

[[peer]]
id = 1
addr = "127.0.0.1:7001"

[[peer]]
id = 2
addr = "127.0.0.1:7002"

[[peer]]
id = 3
addr = "127.0.0.1:7003"

[[group]]
name = "g"
master = "127.0.0.1:6379"
"#;

#[test]
fn check_config_accepts_the_shipped_configs_and_masks_secrets() {
    for f in ["config/raftinel.example.toml", "config/demo/node1.toml"] {
        let out = Command::new(bin())
            .args(["check-config", "--config", f])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("demo-secret-change-me"), "{text}");
    }
}

#[test]
fn malformed_toml_names_the_line() {
    let (code, err) = check_config(&GOOD.replace("name = \"g\"", "name = \"g"));
    assert_eq!(code, 2);
    assert!(err.contains("line 18"), "{err}");
}

#[test]
fn unknown_key_is_named() {
    let (code, err) = check_config(&GOOD.replace("name = \"g\"", "name = \"g\"\ndown_after = 5"));
    assert_eq!(code, 2);
    assert!(
        err.contains("down_after") && err.contains("line 19"),
        "{err}"
    );
}

#[test]
fn duplicate_peer_ids_and_missing_peers_are_refused() {
    let (code, err) = check_config(&GOOD.replace("id = 3", "id = 2"));
    assert_eq!(code, 2);
    assert!(err.contains("duplicate peer id 2"), "{err}");
    let no_peers: String = GOOD.split("[[peer]]").next().unwrap_or("").to_string()
        + "[[group]]\nname = \"g\"\nmaster = \"127.0.0.1:6379\"\n";
    let (code, err) = check_config(&no_peers);
    assert_eq!(code, 2);
    assert!(err.contains("peer"), "{err}");
}
