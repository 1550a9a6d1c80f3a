#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/install-test-deps.sh), then runs the
# whole suite: unit tests, end-to-end tests of the real binaries, and the cross-checks against
# independent implementations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --locked --workspace
