#!/usr/bin/env bash
# ArchLens set-up on a fresh Debian bookworm machine (as root).
#   bash tools/bootstrap.sh run    install packages, build, launch the app on a demo model
#   bash tools/bootstrap.sh test   install packages, build, run every test through CTest
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

PKGS=(cmake ninja-build ccache g++ pkg-config
      qt6-base-dev qt6-svg-dev libqcustomplot-dev libqcustomplot2.1-qt6
      nlohmann-json3-dev libpcre2-dev libutf8proc-dev libhwy-dev libbenchmark-dev
      xvfb xauth x11-apps imagemagick fonts-dejavu-core)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

cuda_args=()
if [[ -x /usr/local/cuda/bin/nvcc ]]; then cuda_args=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc); fi
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}"
cmake --build build -j"$jobs"

case "$mode" in
  run)
    shift || true
    if [[ -x build/app/gui/archlens ]]; then
      if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
        # No screen here: run the real window under Xvfb on a demo model, chat once, and keep
        # the screenshots so the launch can be seen.
        echo "== no display: running ArchLens under Xvfb on demo:llama3; screenshots in out/first-launch/"
        exec xvfb-run -a -s "-screen 0 1600x1000x24" build/app/gui/archlens --model demo:llama3 \
          --prompt "Hello! What can you show me?" --max-tokens 48 --capture-dir out/first-launch --quit-after-capture "$@"
      fi
      exec build/app/gui/archlens "$@"
    else
      exec build/app/archlens-cli demo "$@"
    fi
    ;;
  test)
    start=$(date +%s)
    ctest --test-dir build --output-on-failure -j"$jobs"
    # One configuration with AddressSanitizer + UBSan runs the engine tests (bad input above all).
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARCHLENS_SANITIZE=ON -DARCHLENS_BUILD_GUI=OFF
    cmake --build build-asan -j"$jobs"
    ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$jobs" -L sanitize
    echo "== whole test suite took $(( $(date +%s) - start )) s"
    ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
