#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite on the tiny profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash install.sh
python3 -m pytest tests "$@"
