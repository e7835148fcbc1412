#!/usr/bin/env bash
# Install everything melbench needs, idempotently: the Debian packages listed in
# scripts/apt-packages.txt (only those missing), then a virtual environment in .venv with
# melbench and its test dependencies. Safe to run again; it then does almost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | tr -s ' \t' '\n' | grep -v '^$' || true)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch/torchaudio come pinned from pyproject.toml; on these machines pip takes torch from local disk.
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >.venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2
  echo "setup: pip install failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
.venv/bin/python -c "import torch, torchaudio, benchmark; print('setup: ok, torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
