#!/usr/bin/env bash
# Runs every test of slurmbook on a fresh machine: installs what it needs
# (apt, pip), builds once, installs the kernelspec into a private virtualenv,
# brings the loopback Slurm cluster up (and always down again), then runs the
# Rust tests and the Python suites (conformance, notebooks, cluster).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR=never
VENV="$ROOT/.venv"
status=0
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAILED: $*"; status=1; }

step "system packages"
need=()
command -v python3 >/dev/null || need+=(python3 python3-venv)
command -v cc >/dev/null || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" || { echo "apt-get failed"; exit 1; }
fi

step "python test environment ($VENV)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || exit 1
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt || exit 1
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
# Jupyter looks only in the virtualenv and a private data dir, never in ~.
export JUPYTER_DATA_DIR="$VENV/share/jupyter" JUPYTER_CONFIG_DIR="$VENV/etc/jupyter-config"
export JUPYTER_PLATFORM_DIRS=1

step "build (once, debug profile shared by the binary and the tests)"
# The loopback-cluster tests are behind a feature (a plain `cargo test` skips
# building them); here they are on, and fail when the cluster is not up.
FEATURES=(--features slurmbook-magics/cluster-tests)
cargo build --workspace --all-targets --locked "${FEATURES[@]}" || exit 1
cargo test --workspace --locked "${FEATURES[@]}" --no-run -q || exit 1

step "lint"
cargo fmt --all --check || fail "cargo fmt --check"
cargo clippy --workspace --all-targets --locked "${FEATURES[@]}" -q -- -D warnings || fail "cargo clippy"

step "kernelspec"
target/debug/slurmbook install --sys-prefix || exit 1
jupyter kernelspec list

step "loopback Slurm cluster + sshd"
cluster_up=0
if python3 tests/cluster/cluster.py up > /tmp/slurmbook-cluster-facts.json; then
  cluster_up=1
else
  fail "cluster up"
fi
trap '[ $cluster_up = 1 ] && python3 tests/cluster/cluster.py down >/dev/null 2>&1' EXIT

step "rust tests"
cargo test --workspace --locked "${FEATURES[@]}" 2>&1 | tee /tmp/slurmbook-cargo-test.log
[ "${PIPESTATUS[0]}" = 0 ] || fail "cargo test"

step "python tests"
python -m pytest -p no:cacheprovider -q tests || fail "pytest"

step "summary"
rust_passed=$(grep -Eo '[0-9]+ passed' /tmp/slurmbook-cargo-test.log | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' /tmp/slurmbook-cargo-test.log | awk '{s+=$1} END {print s+0}')
echo "rust: $rust_passed passed, $rust_failed failed"
exit $status
