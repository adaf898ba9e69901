#!/usr/bin/env bash
# Packs what a lent GPU machine needs to run tools/gpu_check.sh without building or installing
# anything there. The device image has nvcc, CMake, ninja and the CUDA libraries but no Qt,
# nlohmann-json, PCRE2 or utf8proc, nothing can be installed on it, and the whole lease is 15
# minutes: so archlens-cli and test_cuda are built here (Release, sm_90 machine code only, no
# PTX: the H100 and H200 are sm_90), with the shared libraries they need beyond glibc, libstdc++, the CUDA driver and cuBLAS
# (those the device has), and the model fixtures (../shared does not travel with the repo).
# Everything goes into .gpu/bundle.tar.xz (xz keeps it inside the device tool's 64 MiB);
# .gpu/ is ignored through .git/info/exclude.
#   tools/gpu_bundle.sh [FIXTURES_DIR]
# Then one device call: carry [".gpu"], command "tools/gpu_check.sh" (it unpacks the bundle).
set -euo pipefail
cd "$(dirname "$0")/.."
FIXTURES=${1:-${ARCHLENS_FIXTURES:-../shared/fixtures}}
[ -f "$FIXTURES/README.md" ] || { echo "gpu_bundle: no fixtures at $FIXTURES" >&2; exit 1; }
BUILD=build-gpu-bundle
cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DARCHLENS_BUILD_GUI=OFF -DCMAKE_CUDA_ARCHITECTURES=90-real > /dev/null
grep -q 'ARCHLENS_HAVE_CUDA=1' $BUILD/build.ninja || { echo "gpu_bundle: no nvcc here, so no CUDA backend to pack" >&2; exit 1; }
ninja -C $BUILD archlens-cli test_cuda

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/lib-compat" "$STAGE/fixtures"
cp $BUILD/app/archlens-cli $BUILD/tests/test_cuda "$STAGE/bin/"
strip --strip-unneeded "$STAGE"/bin/*
# Libraries the device has (or must provide itself: the driver, and cuBLAS at ~600 MB) stay out.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|libcuda|libcublas|libcublasLt)\.so'
ldd "$STAGE"/bin/* | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] && continue
  cp -L "$path" "$STAGE/lib/$name"
done
# Our C++ runtime, used there only if the device's is older than the one we built against.
for name in libstdc++.so.6 libgcc_s.so.1; do
  cp -L "$(ldd "$STAGE/bin/archlens-cli" | awk -v n=$name '$1 == n {print $3}')" "$STAGE/lib-compat/$name"
done
# Every model fixture (the tokenizer fixtures are not used by the GPU checks).
for d in "$FIXTURES"/*/; do
  n=$(basename "$d")
  [ "$n" = tokenizers ] || cp -r "$d" "$STAGE/fixtures/$n"
done
cp "$FIXTURES/README.md" "$STAGE/fixtures/"
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%FT%TZ) on $(uname -srm), $(/usr/local/cuda/bin/nvcc --version | tail -1)"
  echo "libs: $(ls "$STAGE/lib" | tr '\n' ' ')"
  echo "needs $(objdump -T "$STAGE"/bin/* "$STAGE"/lib/* 2> /dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1) or newer on the device"
} > "$STAGE/MANIFEST"
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo '/.gpu/' >> .git/info/exclude; }
tar -C "$STAGE" -cf - . | xz -T0 -6 > .gpu/bundle.tar.xz
cp "$STAGE/MANIFEST" .gpu/MANIFEST
size=$(stat -c %s .gpu/bundle.tar.xz)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "gpu_bundle: .gpu/bundle.tar.xz $((size >> 20)) MiB (+ the repo's $((tree >> 20)) MiB; the device tool carries 64 MiB)"
cat .gpu/MANIFEST
[ $((size + tree)) -lt $((62 << 20)) ] || { echo "gpu_bundle: too large for the device tool" >&2; exit 1; }
