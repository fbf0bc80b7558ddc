#!/usr/bin/env bash
# The project's single test command (also what CI runs, through .ci/run).
#
# 1. Installs what the tests need when it is missing: redis-server and
#    redis-tools, prometheus (for promtool), iptables, iproute2, util-linux
#    (flock, unshare) and ruby (Vagrantfile check) through apt-get; the Python
#    packages redis and aiosmtpd (a real SMTP server) through pip.
# 2. cargo fmt --check
# 3. cargo clippy --all-targets -- -D warnings
# 4. cargo nextest run --workspace --no-fail-fast (cargo test --workspace
#    --no-fail-fast when cargo-nextest is not installed)
#
# Every step runs even if an earlier one failed; the exit status is non-zero
# if any step failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RT_ROOT"

FAILED=()

# run NAME COMMAND...: print and run a step, remember it if it fails.
run() {
    local name="$1"
    shift
    rt_step "$name"
    rt_say "    \$ $*"
    local start rc=0
    start=$(rt_now_ms)
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        rt_ok "$name ($(($(rt_now_ms) - start)) ms)"
    else
        rt_say "    FAILED: $name (exit $rc)"
        FAILED+=("$name")
    fi
}

rt_step "test prerequisites"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    rt_say "    redis-server/redis-cli missing: installing redis-server redis-tools"
    rt_apt_install redis-server redis-tools
fi
rt_ok "$(redis-server --version | cut -d' ' -f1-3), $(redis-cli --version)"
# Debian package -> a command it provides.
missing=()
for pair in prometheus:promtool iptables:iptables iproute2:ip util-linux:unshare ruby:ruby; do
    command -v "${pair#*:}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    rt_say "    missing: ${missing[*]}: installing"
    rt_apt_install "${missing[@]}"
fi
rt_ok "$(promtool --version 2>&1 | head -1), $(iptables --version), $(ruby --version | cut -d' ' -f1-2)"
rt_need_pyredis
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    rt_say "    installing the Python package aiosmtpd (real SMTP server for the notification tests)"
    python3 -m pip install -q aiosmtpd || python3 -m pip install -q --break-system-packages aiosmtpd
fi
rt_ok "aiosmtpd $(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)')"
rt_ok "python3 $(python3 -c 'import redis, sys; print(sys.version.split()[0], "+ redis-py", redis.__version__)')"
for tool in fmt clippy; do
    cargo "$tool" --version >/dev/null 2>&1 ||
        rt_die "cargo $tool is not installed (rustup component add ${tool/fmt/rustfmt})"
done
rt_ok "$(cargo --version), $(cargo fmt --version), $(cargo clippy --version)"

run "format (cargo fmt --check)" cargo fmt --check
run "lint (cargo clippy)" cargo clippy --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    run "tests (cargo nextest)" cargo nextest run --workspace --no-fail-fast
else
    rt_say ""
    rt_say "    cargo-nextest not installed: using cargo test"
    run "tests (cargo test)" cargo test --workspace --no-fail-fast
fi

rt_say ""
if [ "${#FAILED[@]}" -gt 0 ]; then
    rt_say "scripts/test.sh: FAILED steps:"
    for f in "${FAILED[@]}"; do rt_say "  - $f"; done
    exit 1
fi
rt_say "scripts/test.sh: all steps passed"
