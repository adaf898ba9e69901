#!/usr/bin/env bash
# One device call on a lent GPU machine: the CUDA backend against the CPU and the fixtures, then the
# CUDA issue's benchmarks and the A/B pairs of the backend's choices, inside one lease.
#   On the dev machine:  tools/gpu_bundle.sh            (builds and packs .gpu/bundle.tar.xz)
#   Device call:         carry [".gpu"], command "tools/gpu_check.sh", timeout_s 600
# With the bundle nothing is built on the device (its image has no Qt, nlohmann-json, PCRE2 or
# utf8proc, and nothing can be installed there). Without it, archlens-cli (and test_cuda where Qt
# is found) is built with CMake, for which those libraries must be on the machine.
# DRY_RUN=1 checks the script itself on a machine without a GPU: tiny models, CPU backend.
# Every step has a time limit, so the table comes out within BUDGET_S seconds (default 500).
# Files back ($OUT, the device tool returns 8 at most): summary.txt, steps.log, test_cuda.log,
# fixtures.txt, bench.jsonl (one line per benchmark), ceilings.txt, MANIFEST, ncu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/archlens-gpu-out}
WORK=${WORK:-/tmp/archlens-gpu}
BUDGET_S=${BUDGET_S:-500}
mkdir -p "$OUT" "$WORK"
T0=$SECONDS
exec 3>&1  # the console: steps' own output is redirected, the log lines are not
log() { echo "[$((SECONDS - T0))s] $*" | tee -a "$OUT/steps.log" >&3; }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
# step NAME LIMIT_S CMD...: runs CMD with a time limit (never past the budget), logs rc and time.
step() {
  local name=$1 lim=$2 t=$SECONDS rc
  shift 2
  [ "$lim" -gt "$(left)" ] && lim=$(left)
  if [ "$lim" -lt 5 ]; then log "$name: skipped (budget spent)"; return 99; fi
  timeout -k 5 "$lim" "$@"
  rc=$?
  log "$name: rc $rc in $((SECONDS - t)) s$([ $rc = 124 ] && echo ' (time limit)')"
  return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader > "$WORK/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$WORK/gpu.txt"
log "gpu: $(cat "$WORK/gpu.txt"); $(ldd --version 2>&1 | head -1); $(nproc) cores"

# --- binaries: the bundle, or a build here ---
TEST=""
if [ -f .gpu/bundle.tar.xz ]; then
  B=$WORK/bundle
  rm -rf "$B" && mkdir -p "$B"
  tar -C "$B" -xJf .gpu/bundle.tar.xz 2> /dev/null ||
    python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/bundle.tar.xz "$B" || { log "cannot unpack the bundle"; exit 1; }
  cp "$B/MANIFEST" "$OUT/MANIFEST"
  # cuBLAS comes from the device's CUDA (the toolkit, or PyTorch's wheels).
  libdirs=$B/lib
  if ! ldconfig -p | grep -q 'libcublas\.so\.13 '; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $(find /usr /opt -name 'libcublas.so.13' -printf '%h\n' 2> /dev/null | sort -u); do
      [ -e "$d/libcublas.so.13" ] && { libdirs=$libdirs:$d; break; }
    done
  fi
  export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  CLI=$B/bin/archlens-cli
  TEST=$B/bin/test_cuda
  FIXTURES=${FIXTURES:-$B/fixtures}
  if "$CLI" --help 2>&1 | grep -q 'GLIBCXX\|CXXABI\|GCC_[0-9]'; then
    export LD_LIBRARY_PATH=$B/lib-compat:$LD_LIBRARY_PATH
    log "bundle: the device's C++ runtime is older than the build's: using the bundle's"
  fi
  missing=$(ldd "$CLI" "$TEST" 2>&1 | grep 'not found' | sort -u)
  [ -z "$missing" ] || log "bundle: missing libraries: $missing"
else
  FIXTURES=${FIXTURES:-$(cd .. && pwd)/shared/fixtures}
  step configure 120 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARCHLENS_BUILD_GUI=OFF -DCMAKE_CUDA_ARCHITECTURES=90 > "$WORK/configure.log" 2>&1 ||
    { tail -20 "$WORK/configure.log" | tee -a "$OUT/steps.log"; exit 1; }
  step build 300 ninja -C build-gpu archlens-cli > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" | tee -a "$OUT/steps.log"; exit 1; }
  CLI=./build-gpu/app/archlens-cli
  step build-test_cuda 200 ninja -C build-gpu test_cuda >> "$WORK/build.log" 2>&1 && TEST=./build-gpu/tests/test_cuda
fi
export ARCHLENS_CLI=$CLI
log "devices: $("$CLI" devices 2>&1 | tr '\n' ';')"

# --- the benchmark models, made on the CPU cores while the GPU runs the tests ---
BK=cuda QP=qwen3-0.6b LP=llama3.1-8b
[ "${DRY_RUN:-0}" = 1 ] && BK=cpu QP=tiny LP=tiny
Q=$WORK/q-$QP-bf16.gguf L=$WORK/l-$LP-bf16.gguf M=$WORK/moe-tiny.gguf QQ=$WORK/q-$QP-q4km.gguf
(
  [ -f "$Q" ] || $CLI synth --arch qwen3 --preset $QP --dtype bf16 --out "$Q"
  [ -f "$M" ] || $CLI synth --arch qwen3-moe --dtype bf16 --out "$M"
  [ -f "$L" ] || $CLI synth --arch llama3 --preset $LP --dtype bf16 --out "$L"
  [ -f "$QQ" ] || $CLI synth --arch qwen3 --preset $QP --dtype q4_k_m --out "$QQ"
) > "$WORK/synth.log" 2>&1 &
SYNTH=$!

# --- correctness ---
if [ -n "$TEST" ]; then
  ARCHLENS_FIXTURES=$FIXTURES step test_cuda 240 "$TEST" > "$OUT/test_cuda.log" 2>&1
  log "test_cuda: $(grep Totals "$OUT/test_cuda.log")"
  grep -E -A2 '^FAIL' "$OUT/test_cuda.log" | head -30 | tee -a "$OUT/steps.log"
  # A failure's first diagnosis, in the same call: the failing functions again with each of the
  # backend's choices turned off (ARCHLENS_CUDA_OFF, engine/gpu_types.h); the one whose "off" passes
  # is where to look (and the switch to run with meanwhile).
  failed=$(grep -oE '^FAIL!  : TestCuda::[a-z_0-9]+' "$OUT/test_cuda.log" | sed 's/.*:://' | sort -u | head -8 | tr '\n' ' ')
  if [ -n "$failed" ]; then
    for off in pdl tc-attention tiles heads-fusion fusion graphs grouped-moe; do
      ARCHLENS_CUDA_OFF=$off ARCHLENS_FIXTURES=$FIXTURES step "diagnose-$off" 25 "$TEST" $failed > "$WORK/diag-$off.log" 2>&1
      log "  with $off off: $(grep Totals "$WORK/diag-$off.log")"
    done
  fi
fi
BACKEND=$BK step fixtures 120 python3 tools/gpu_check.py "$CLI" "$FIXTURES" > "$OUT/fixtures.txt" 2>&1
if grep -q FAIL "$OUT/fixtures.txt"; then
  grep -E 'FAIL' "$OUT/fixtures.txt" | tee -a "$OUT/steps.log"
  ARCHLENS_CUDA_OFF=pdl,tc-attention,tiles,heads-fusion,fusion,graphs,grouped-moe BACKEND=$BK step fixtures-all-off 120 \
    python3 tools/gpu_check.py "$CLI" "$FIXTURES" > "$WORK/fixtures-all-off.txt" 2>&1
  log "  fixtures with every switch off: $(grep -c FAIL "$WORK/fixtures-all-off.txt") failing lines (pdl, tc-attention, tiles, fusion, graphs, grouped-moe off)"
fi

# --- ceilings (METHOD.md): copy bandwidth and a bf16 product through PyTorch, on random data ---
step ceilings 60 python3 - > "$OUT/ceilings.txt" 2>&1 << 'EOF'
import torch
def median_ms(f, n=10):
    f(); torch.cuda.synchronize(); times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(n): f()
        e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e) / n)
    return sorted(times)[2]
a = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16); b = torch.empty_like(a)
print("copy %.0f GB/s (read+write of 2 GiB, random, median of 5)" % (2 * a.numel() * 2 / median_ms(lambda: b.copy_(a)) / 1e6))
del a, b
x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); y = torch.randn_like(x)
print("bf16 matmul %.0f TFLOP/s (8192^3, random, median of 5)" % (2 * 8192 ** 3 / median_ms(lambda: x @ y) / 1e9))
EOF
cat "$OUT/ceilings.txt" >> "$OUT/steps.log"

lim=$(left)
[ "$lim" -gt 240 ] && lim=240
timeout "$lim" tail --pid=$SYNTH -f /dev/null
pkill -P $SYNTH 2> /dev/null
log "synth: $(tail -3 "$WORK/synth.log" | tr '\n' ' ')"

# --- speed: bench NAME MODEL ARGS... appends {"name", "rc", "result"} to bench.jsonl ---
bench() {
  local name=$1 model=$2
  shift 2
  [ -f "$model" ] || { log "$name: no model"; return; }
  step "$name" 90 "$CLI" bench "$model" --json "$@" > "$WORK/$name.json" 2> "$WORK/$name.err"
  local rc=$?
  python3 - "$name" "$rc" "$WORK/$name.json" "$WORK/$name.err" >> "$OUT/bench.jsonl" << 'EOF'
import json, sys
name, rc, out, err = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try: result = json.load(open(out))
except Exception: result = None
print(json.dumps({"name": name, "rc": rc, "result": result, "stderr": open(err).read()[-600:] if result is None else ""}))
EOF
}
bench qwen06-cuda "$Q" --backend $BK --prompt 512 --gen 128 --reps 3
bench llama8b-cuda "$L" --backend $BK --prompt 512 --gen 128 --reps 3
bench qwen06-cuda-attn1 "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --capture-attention 0
bench moe-cuda "$M" --backend $BK --prompt 512 --gen 128 --reps 3
bench moe-cuda-routing "$M" --backend $BK --prompt 512 --gen 128 --reps 3 --capture-routing
bench moe-cuda-grouped-off "$M" --backend $BK --prompt 512 --gen 8 --reps 3 --gpu-grouped-moe off
bench llama8b-pp2k "$L" --backend $BK --prompt 2048 --gen 8 --reps 2
bench llama8b-pp4k "$L" --backend $BK --prompt 4096 --gen 8 --reps 2
bench llama8b-pp4k-nogemm "$L" --backend $BK --prompt 4096 --gen 8 --reps 2 --gpu-gemm-attention off
bench llama8b-pp4k-notc "$L" --backend $BK --prompt 4096 --gen 8 --reps 2 --gpu-gemm-attention off --gpu-tc-attention off
bench llama8b-nogemm "$L" --backend $BK --prompt 512 --gen 8 --reps 3 --gpu-gemm-attention off
# prompt attention products of 16-bit models: TF32 (default) against f32 SGEMM
bench llama8b-notf32 "$L" --backend $BK --prompt 512 --gen 8 --reps 3 --gpu-tf32-attention off
bench llama8b-pp4k-notf32 "$L" --backend $BK --prompt 4096 --gen 8 --reps 2 --gpu-tf32-attention off
bench qwen06-ctx8k "$Q" --backend $BK --prompt 8192 --gen 64 --reps 2
bench qwen06-ctx8k-nosplit "$Q" --backend $BK --prompt 8192 --gen 64 --reps 2 --gpu-splits 1
bench qwen06-split256 "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --gpu-split-keys 256
bench qwen06-ctx8k-nogemm "$Q" --backend $BK --prompt 8192 --gen 8 --reps 2 --gpu-gemm-attention off
bench qwen06-ctx8k-notiles "$Q" --backend $BK --prompt 8192 --gen 8 --reps 2 --gpu-gemm-attention off --gpu-tiles off
bench qwen06-ctx8k-notc "$Q" --backend $BK --prompt 8192 --gen 8 --reps 2 --gpu-gemm-attention off --gpu-tc-attention off
bench qwen06-nofusion "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --gpu-fusion off
# the attention norm, q|k|v product and heads in one decode launch (per-head tickets) against two
bench qwen06-noheads "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --gpu-heads-fusion off
bench qwen06-nographs "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --gpu-graphs off
bench qwen06-pdl "$Q" --backend $BK --prompt 512 --gen 128 --reps 3 --gpu-pdl on
bench llama8b-pdl "$L" --backend $BK --prompt 512 --gen 128 --reps 2 --gpu-pdl on
# quantized prompts: f32 slabs on TF32 (default) against BF16 slabs and exact f32
bench q4km-pp2k "$QQ" --backend $BK --prompt 2048 --gen 8 --reps 3
bench q4km-pp2k-bf16 "$QQ" --backend $BK --prompt 2048 --gen 8 --reps 3 --gpu-quant-gemm bf16
bench q4km-pp2k-f32 "$QQ" --backend $BK --prompt 2048 --gen 8 --reps 3 --gpu-quant-gemm f32
# where the time goes: per-kernel GPU time (CUDA events around every launch; decode steps eager)
bench qwen06-profile "$Q" --backend $BK --prompt 512 --gen 32 --reps 2 --gpu-profile
bench llama8b-profile "$L" --backend $BK --prompt 512 --gen 16 --reps 2 --gpu-profile
bench llama8b-pp4k-profile "$L" --backend $BK --prompt 4096 --gen 4 --reps 1 --gpu-profile
bench moe-profile "$M" --backend $BK --prompt 512 --gen 32 --reps 2 --gpu-profile
bench qwen06-attn1-profile "$Q" --backend $BK --prompt 512 --gen 32 --reps 2 --gpu-profile --capture-attention 0
bench qwen06-cpu "$Q" --backend cpu --prompt 128 --gen 16 --reps 1

# --- hardware counters of the decode mat-vecs (Nsight Compute, where the runtime lets it read them):
# memory throughput, occupancy and what the warps wait on, for the next change to start from data
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2> /dev/null | head -1)
if [ -n "$NCU" ] && [ "${DRY_RUN:-0}" != 1 ] && [ -f "$L" ]; then
  step ncu-decode 120 "$NCU" --clock-control none --kernel-name regex:'matvec|attention_kernel|qkv_heads' --launch-skip 300 --launch-count 8 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats \
    "$CLI" bench "$L" --backend cuda --prompt 16 --gen 24 --reps 1 --gpu-graphs off > "$OUT/ncu.txt" 2>&1
  # the 0.6B's step: short kernels, where launch gaps and the first loads count (caches as they are)
  [ -f "$Q" ] && step ncu-decode-qwen 90 "$NCU" --clock-control none --cache-control none --kernel-name regex:'matvec|attention_kernel|qkv_heads' \
    --launch-skip 400 --launch-count 8 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
    "$CLI" bench "$Q" --backend cuda --prompt 16 --gen 24 --reps 1 --gpu-graphs off >> "$OUT/ncu.txt" 2>&1
  log "ncu: $(grep -c 'Memory Throughput' "$OUT/ncu.txt") kernels profiled"
else
  log "ncu: not run (${NCU:-not found})"
fi

# --- the table ---
python3 - "$OUT/bench.jsonl" "$OUT/ceilings.txt" > "$OUT/summary.txt" << 'EOF'
import json, re, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line); rows[d["name"]] = d
ceil = open(sys.argv[2]).read() if len(sys.argv) > 2 else ""
m = re.search(r"bf16 matmul (\d+)", ceil); peak = float(m.group(1)) if m else 790.0
m = re.search(r"copy (\d+)", ceil); bw = float(m.group(1)) if m else 4300.0
print("%-24s %10s %10s  %s" % ("bench", "prefill/s", "decode/s", "notes"))
for n, d in rows.items():
    r = d["result"]
    if r is None:
        print("%-24s %10s %10s  rc %d %s" % (n, "-", "-", d["rc"], (d["stderr"].strip().splitlines() or [""])[-1])); continue
    note = r.get("decode_mode", "")
    wb = r.get("weight_bytes_per_token", 0)
    if wb and r["backend"].startswith("cuda"):
        note += "  decode %.0f%% of the %.0f GB/s copy bound" % (100 * r["decode_tokens_per_s"] * wb / (bw * 1e9), bw)
        note += "  prefill %.0f TFLOP/s (%.0f%% of %.0f)" % (r["prefill_tokens_per_s"] * wb / 1e12, 100 * r["prefill_tokens_per_s"] * wb / 1e12 / peak, peak)
    print("%-24s %10.1f %10.1f  %s" % (n, r["prefill_tokens_per_s"], r["decode_tokens_per_s"], note))
def ratio(a, b, key="decode_tokens_per_s"):
    ra, rb = rows.get(a, {}).get("result"), rows.get(b, {}).get("result")
    return "%+.1f%%" % (100 * (ra[key] / rb[key] - 1)) if ra and rb else "-"
print("targets: qwen06 decode >= 1500 tok/s; llama8b decode >= 180; llama8b prefill >= 50% of peak (weights bf16: 2 flop/param = 1 flop/byte)")
for n, d in rows.items():  # per-kernel GPU time (bench --gpu-profile)
    for ph in ("prefill", "decode"):
        p = ((d["result"] or {}).get("gpu_profile") or {}).get(ph)
        if not p: continue
        print("%s %s: %.3f ms of GPU time per token in kernels and cuBLAS; longest:" % (n, ph, p["gpu_ms"] / max(1, p["tokens"])))
        for k in p["kernels"][:8]:
            print("  %5.1f%% %9.3f ms %6d calls  %s" % (100 * k["ms"] / max(p["gpu_ms"], 1e-9), k["ms"], k["calls"], k["kernel"][:90]))
        mv = sum(k["ms"] for k in p["kernels"] if "matvec" in k["kernel"])
        wb = d["result"].get("weight_bytes_per_token", 0)
        if ph == "decode" and mv > 0 and wb:  # decode's mat-vecs read every weight once a token
            print("  the mat-vecs stream the weights at %.0f GB/s (%.0f%% of the copy rate)" % (wb * p["tokens"] / (mv / 1e3) / 1e9, 100 * wb * p["tokens"] / (mv / 1e3) / 1e9 / bw))
# time per token with the probe over time without: decode rate without / rate with - 1
P = "prefill_tokens_per_s"
print("capture overhead (<= 2%%): one head decode %s prefill %s; routing decode %s prefill %s" % (
    ratio("qwen06-cuda", "qwen06-cuda-attn1"), ratio("qwen06-cuda", "qwen06-cuda-attn1", P),
    ratio("moe-cuda", "moe-cuda-routing"), ratio("moe-cuda", "moe-cuda-routing", P)))
print("A/B, prompt attention as cuBLAS products over the tensor-core kernel: 8B pp512 %s, pp4k %s, 0.6B ctx8k %s" % (
    ratio("llama8b-cuda", "llama8b-nogemm", P), ratio("llama8b-pp4k", "llama8b-pp4k-nogemm", P), ratio("qwen06-ctx8k", "qwen06-ctx8k-nogemm", P)))
print("A/B, the default's speed-up over the alternative: grouped moe prefill %s; tc attention over f32 tiles 8B pp4k %s, 0.6B ctx8k %s; tiles over per-query %s; splits decode %s; 64-key splits over 256 %s; fusion %s; heads fusion (decode) %s; graphs %s; pdl on over off: 0.6B decode %s prefill %s, 8B decode %s" % (
    ratio("moe-cuda", "moe-cuda-grouped-off", "prefill_tokens_per_s"), ratio("llama8b-pp4k-nogemm", "llama8b-pp4k-notc", "prefill_tokens_per_s"),
    ratio("qwen06-ctx8k-nogemm", "qwen06-ctx8k-notc", "prefill_tokens_per_s"), ratio("qwen06-ctx8k-nogemm", "qwen06-ctx8k-notiles", "prefill_tokens_per_s"),
    ratio("qwen06-ctx8k", "qwen06-ctx8k-nosplit"), ratio("qwen06-cuda", "qwen06-split256"), ratio("qwen06-cuda", "qwen06-nofusion"), ratio("qwen06-cuda", "qwen06-noheads"), ratio("qwen06-cuda", "qwen06-nographs"),
    ratio("qwen06-pdl", "qwen06-cuda"), ratio("qwen06-pdl", "qwen06-cuda", P), ratio("llama8b-pdl", "llama8b-cuda")))
print("A/B, TF32 prompt attention products over f32 (BF16 weights): 8B pp512 %s, pp4k %s" % (
    ratio("llama8b-cuda", "llama8b-notf32", P), ratio("llama8b-pp4k", "llama8b-pp4k-notf32", P)))
print("quantized prompt (Q4_K_M, 2048 tokens), TF32 slabs' speed-up over BF16 slabs %s, over f32 %s" % (
    ratio("q4km-pp2k", "q4km-pp2k-bf16", P), ratio("q4km-pp2k", "q4km-pp2k-f32", P)))
EOF
cat "$OUT/summary.txt"
log "done"
