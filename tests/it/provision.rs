//! `scripts/provision.sh` in its `--root` mode (everything under a temp dir,
//! no systemd, no root needed) and `vagrant/Vagrantfile`. The provisioning of
//! real hosts, with the cluster started from the installed units, is
//! exercised by `testbed` (scripts/testbed.sh provisions its three hosts).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    ok: bool,
    out: String,
}

/// `provision.sh --root ROOT` for node 2 of a three-node cluster, plus EXTRA.
fn provision(root: &Path, secrets: &Path, extra: &[&str]) -> Run {
    let out = Command::new(repo().join("scripts/provision.sh"))
        .arg("--root")
        .arg(root)
        .args(["--no-systemd", "--no-packages", "--node-id", "2"])
        .args(["--address", "10.77.0.12"])
        .args(["--peers", "1=10.77.0.11,2=10.77.0.12,3=10.77.0.13"])
        .arg("--peer-secret-file")
        .arg(secrets.join("peer.key"))
        .arg("--redis-password-file")
        .arg(secrets.join("redis.pass"))
        .args(["--binary", env!("CARGO_BIN_EXE_raftinel")])
        .args(["--down-after-ms", "1000"])
        .args(extra)
        .output()
        .expect("run scripts/provision.sh");
    Run {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every file and directory under ROOT: mode and content.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, acc: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let mode = meta.permissions().mode();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            if meta.is_dir() {
                acc.insert(rel, (mode, Vec::new()));
                walk(&path, root, acc);
            } else {
                acc.insert(rel, (mode, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(root, root, &mut acc);
    acc
}

fn changed_steps(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.trim_start().starts_with("changed "))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn provision_twice_changes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    std::fs::write(secrets.join("peer.key"), "peer-secret-0123456789abcdef\n").expect("write");
    std::fs::write(secrets.join("redis.pass"), "redis-pass-0123456789abcdef\n").expect("write");
    let root = tmp.path().join("root");

    let first = provision(&root, &secrets, &[]);
    assert!(first.ok, "first run failed:\n{}", first.out);
    assert!(!changed_steps(&first.out).is_empty(), "{}", first.out);
    let before = tree(&root);

    let second = provision(&root, &secrets, &[]);
    assert!(second.ok, "second run failed:\n{}", second.out);
    assert!(
        changed_steps(&second.out).is_empty(),
        "the second run changed something:\n{}",
        second.out
    );
    assert!(
        second.out.contains("provision: 0 changed,"),
        "{}",
        second.out
    );
    assert_eq!(tree(&root), before, "files differ after the second run");

    // What was written: secrets 0600, data dir 0700, a config check-config
    // accepts, redis bound to the node with auth, AOF and its first role.
    assert_eq!(mode(&root.join("etc/raftinel/peer.key")), 0o600);
    assert_eq!(mode(&root.join("etc/raftinel/redis.pass")), 0o600);
    assert_eq!(mode(&root.join("var/lib/raftinel")), 0o700);
    let conf = root.join("etc/raftinel/raftinel.toml");
    let check = Command::new(env!("CARGO_BIN_EXE_raftinel"))
        .args(["check-config", "--config"])
        .arg(&conf)
        .output()
        .expect("run check-config");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let toml = std::fs::read_to_string(&conf).expect("read config");
    for line in [
        "node_id = 2",
        "peer_listen = \"10.77.0.12:7000\"",
        "local_redis = \"10.77.0.12:6379\"",
        "addr = \"10.77.0.13:7000\"",
        "master = \"10.77.0.11:6379\"",
    ] {
        assert!(toml.contains(line), "{line} not in the config:\n{toml}");
    }
    assert!(
        !toml.contains("peer-secret-0123"),
        "secret inline in the config"
    );
    assert!(!second.out.contains("peer-secret-0123") && !second.out.contains("redis-pass-0123"));
    let redis_conf_path = root.join("etc/redis/redis.conf");
    let redis_conf = std::fs::read_to_string(&redis_conf_path).expect("read redis.conf");
    for line in [
        "bind 10.77.0.12",
        "requirepass redis-pass-0123456789abcdef",
        "masterauth redis-pass-0123456789abcdef",
        "appendonly yes",
        "protected-mode yes",
        "replicaof 10.77.0.11 6379",
    ] {
        assert!(
            redis_conf.lines().any(|l| l == line),
            "{line} not in redis.conf:\n{redis_conf}"
        );
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/raftinel.service"))
        .expect("read unit");
    assert!(unit.contains(&format!(
        "ExecStart={}/usr/local/bin/raftinel daemon --config {}",
        root.display(),
        conf.display()
    )));

    // After a failover Redis owns its role: CONFIG REWRITE quotes values and
    // moves `replicaof`. A new run keeps that and sees nothing to change.
    let rewritten = redis_conf
        .replace("replicaof 10.77.0.11 6379\n", "")
        .replace(
            "requirepass redis-pass-0123456789abcdef",
            "requirepass \"redis-pass-0123456789abcdef\"",
        )
        + "# Generated by CONFIG REWRITE\nreplicaof 10.77.0.13 6379\n";
    std::fs::write(&redis_conf_path, &rewritten).expect("write redis.conf");
    let third = provision(&root, &secrets, &[]);
    assert!(third.ok, "{}", third.out);
    assert!(changed_steps(&third.out).is_empty(), "{}", third.out);
    assert_eq!(
        std::fs::read_to_string(&redis_conf_path).expect("read"),
        rewritten
    );

    // A managed value that drifted is put back; a new argument changes
    // exactly the config.
    std::fs::write(
        &redis_conf_path,
        rewritten.replace("appendonly yes", "appendonly no"),
    )
    .expect("write");
    let fourth = provision(&root, &secrets, &["--failover-timeout-ms", "30000"]);
    assert!(fourth.ok, "{}", fourth.out);
    let changed = changed_steps(&fourth.out);
    assert_eq!(changed.len(), 2, "{}", fourth.out);
    assert!(changed[0].contains("raftinel config"), "{}", fourth.out);
    assert!(changed[1].contains("redis config"), "{}", fourth.out);
    let redis_conf = std::fs::read_to_string(&redis_conf_path).expect("read");
    assert!(redis_conf.contains("\nappendonly yes\n") && !redis_conf.contains("appendonly no"));
    assert!(redis_conf.contains("replicaof 10.77.0.13 6379"));
}

#[test]
fn provision_rejects_bad_arguments_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    std::fs::write(secrets.join("peer.key"), "short\n").expect("write");
    std::fs::write(secrets.join("redis.pass"), "redis-pass-0123456789abcdef\n").expect("write");
    let root = tmp.path().join("root");
    let run = provision(&root, &secrets, &[]);
    assert!(!run.ok);
    assert!(run.out.contains("shorter than 16 bytes"), "{}", run.out);
    assert!(!root.join("etc/raftinel/peer.key").exists());

    std::fs::write(secrets.join("peer.key"), "peer-secret-0123456789abcdef\n").expect("write");
    let run = provision(&root, &secrets, &["--address", "10.77.0.13"]);
    assert!(!run.ok);
    assert!(
        run.out
            .contains("--peers gives node 2 the address 10.77.0.12"),
        "{}",
        run.out
    );
}

#[test]
fn units_have_the_hardening_and_restart_policy() {
    let unit = std::fs::read_to_string(repo().join("deploy/raftinel.service")).expect("read");
    for line in [
        "User=raftinel",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/raftinel",
        "PrivateTmp=yes",
        "ExecStart=/usr/local/bin/raftinel daemon --config /etc/raftinel/raftinel.toml",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from deploy/raftinel.service"
        );
    }
    let dropin =
        std::fs::read_to_string(repo().join("deploy/redis-server.service.d/raftinel.conf"))
            .expect("read");
    assert!(dropin
        .lines()
        .any(|l| l
            == "ExecStartPre=+/usr/local/bin/raftinel guard --config /etc/raftinel/raftinel.toml --redis-conf /etc/redis/redis.conf"));
}

/// Ruby syntax, then an evaluation with a stub `Vagrant` that records what
/// the file defines: three Debian 12 nodes, each provisioned by provision.sh
/// with its own id and address and the same peers.
#[test]
fn vagrantfile_defines_three_provisioned_nodes() {
    let vagrantfile = repo().join("vagrant/Vagrantfile");
    let syntax = Command::new("ruby").arg("-c").arg(&vagrantfile).output();
    let syntax = syntax.unwrap_or_else(|e| {
        panic!(
            "cannot run ruby ({e}): install it (apt-get install ruby) to check vagrant/Vagrantfile"
        )
    });
    assert!(
        syntax.status.success(),
        "ruby -c vagrant/Vagrantfile: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // Every call is recorded; a block gets a child recorder. Prints the box,
    // then per `config.vm.define`: name, private_network ip, provision args.
    const STUB: &str = r#"
        class Rec
          attr_reader :calls
          def initialize; @calls = []; end
          def method_missing(name, *args, **kw, &blk)
            child = blk ? Rec.new : nil
            @calls << [name.to_s, args, kw, child]
            blk.call(child) if blk
            self
          end
          def respond_to_missing?(*) = true
          def all = @calls + @calls.flat_map { |c| c[3] ? c[3].all : [] }
        end
        module Vagrant
          def self.configure(_version)
            $root = Rec.new
            yield $root
          end
        end
        load ARGV[0]
        box = $root.calls.find { |c| c[0] == "box=" }
        puts "box #{box && box[1].first}"
        $root.calls.select { |c| c[0] == "define" }.each do |c|
          calls = c[3].all
          ip = calls.find { |d| d[0] == "network" }&.dig(2, :ip)
          args = calls.find { |d| d[0] == "provision" }&.dig(2, :args)
          puts [c[1].first, ip, args].inspect
        end
    "#;
    let eval = Command::new("ruby")
        .args(["-e", STUB])
        .arg(&vagrantfile)
        .output()
        .expect("run ruby");
    let text = String::from_utf8_lossy(&eval.stdout).to_string();
    assert!(
        eval.status.success(),
        "evaluating the Vagrantfile failed: {}{}",
        text,
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(text.contains("box debian/bookworm64"), "{text}");
    for (n, ip) in [
        (1, "192.168.56.11"),
        (2, "192.168.56.12"),
        (3, "192.168.56.13"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("[\"node{n}\"")))
            .unwrap_or_else(|| panic!("node{n} not defined:\n{text}"));
        for want in [
            format!("\"{ip}\""),
            format!("\"--node-id\", \"{n}\""),
            "\"--peers\", \"1=192.168.56.11,2=192.168.56.12,3=192.168.56.13\"".to_string(),
            "\"--master-id\", \"1\"".to_string(),
        ] {
            assert!(line.contains(&want), "node{n}: {want} missing in {line}");
        }
    }
}

/// The real mode (no `--root`): system user, owners, /etc and /usr/local
/// paths. Run in a private mount namespace with /etc, /usr and /var overlaid
/// on a temp dir, so the machine itself is not changed. Needs root (CI is
/// root): fails, never skips, without it.
#[test]
fn provision_real_mode_in_an_overlay_is_idempotent() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "provisioning in real mode needs root (unshare, overlay mounts, useradd); CI runs as root"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    std::fs::write(t.join("peer.key"), "peer-secret-0123456789abcdef\n").expect("write");
    std::fs::write(t.join("redis.pass"), "redis-pass-0123456789abcdef\n").expect("write");
    let script = r#"
        set -eu
        t="$1"; bin="$2"; provision="$3"
        mount --make-rprivate /
        for d in etc usr var; do
            mkdir -p "$t/$d/upper" "$t/$d/work"
            mount -t overlay overlay -o "lowerdir=/$d,upperdir=$t/$d/upper,workdir=$t/$d/work" "/$d"
        done
        run() {
            "$provision" --no-systemd --no-packages --node-id 1 --address 10.77.0.11 \
                --peers 1=10.77.0.11,2=10.77.0.12,3=10.77.0.13 \
                --peer-secret-file "$t/peer.key" --redis-password-file "$t/redis.pass" --binary "$bin"
        }
        echo "=== first"; run
        echo "=== second"; run
        echo "=== owners"
        stat -c '%n %U:%G %a' /etc/raftinel /etc/raftinel/raftinel.toml /etc/raftinel/peer.key \
            /etc/raftinel/redis.pass /var/lib/raftinel /usr/local/bin/raftinel /etc/redis/redis.conf
        getent passwd raftinel | cut -d: -f1,6,7
    "#;
    let out = Command::new("unshare")
        .args(["--mount", "--fork", "bash", "-c", script, "bash"])
        .arg(t)
        .arg(env!("CARGO_BIN_EXE_raftinel"))
        .arg(repo().join("scripts/provision.sh"))
        .output()
        .expect("run unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let second = text
        .split("=== second")
        .nth(1)
        .and_then(|s| s.split("=== owners").next())
        .expect("second run output");
    assert!(
        changed_steps(second).is_empty(),
        "second run changed something:\n{text}"
    );
    assert!(text.contains("changed   system user raftinel"), "{text}");
    for want in [
        "/etc/raftinel root:raftinel 750",
        "/etc/raftinel/raftinel.toml root:raftinel 640",
        "/etc/raftinel/peer.key raftinel:raftinel 600",
        "/etc/raftinel/redis.pass raftinel:raftinel 600",
        "/var/lib/raftinel raftinel:raftinel 700",
        "/usr/local/bin/raftinel root:root 755",
        "/etc/redis/redis.conf redis:redis 640",
        "raftinel:/var/lib/raftinel:/usr/sbin/nologin",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
    }
    assert!(
        std::fs::metadata("/etc/raftinel").is_err(),
        "the overlay leaked: /etc/raftinel exists on this machine"
    );
}
