#!/usr/bin/env bash
# For a lent GPU machine (the device tool): builds archlens-cli with the CUDA backend (the Qt suites
# too where Qt is installed), checks the backend against the fixtures, and times the CUDA issue's
# benchmarks on both backends. Logs and JSON under $OUT (default /tmp/archlens-gpu); a table last.
#   FIXTURES=path/to/shared/fixtures tools/gpu_check.sh
# The engine needs nlohmann-json, PCRE2 and utf8proc headers and libraries; where the machine has
# none, carry them and point CMAKE_PREFIX_PATH at them.
set -uo pipefail
OUT=${OUT:-/tmp/archlens-gpu}
FIXTURES=${FIXTURES:-$(cd "$(dirname "$0")/../.." && pwd)/shared/fixtures}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARCHLENS_BUILD_GUI=OFF > "$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
ninja -C build-gpu archlens-cli > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
CLI=./build-gpu/app/archlens-cli
if ninja -C build-gpu test_cuda >> "$OUT/build.log" 2>&1; then
  ARCHLENS_FIXTURES="$FIXTURES" ./build-gpu/tests/test_cuda > "$OUT/test_cuda.log" 2>&1
  echo "test_cuda: $(grep Totals "$OUT/test_cuda.log")"
fi
python3 tools/gpu_check.py "$CLI" "$FIXTURES" | tee "$OUT/fixtures.txt"
# The benchmarks of the CUDA issue: Qwen3-0.6B and Llama-3.1-8B shapes in BF16.
for p in qwen3:qwen3-0.6b llama:llama3.1-8b; do
  arch=${p%%:*}; preset=${p#*:}
  [ -f "$OUT/$preset-bf16.gguf" ] || $CLI synth --arch "$arch" --preset "$preset" --dtype bf16 --out "$OUT/$preset-bf16.gguf" > /dev/null
  for b in cuda cpu; do
    gen=128; [ $b = cpu ] && gen=16
    $CLI bench "$OUT/$preset-bf16.gguf" --prompt 512 --gen $gen --reps 3 --backend $b --json > "$OUT/$preset-$b.json" 2> "$OUT/$preset-$b.err"
  done
done
# Capture overhead (the issue: <= 2%): one attention head on Qwen3-0.6B, and routing on a MoE
# (the tiny Qwen3-MoE demo shape: a real 30B-A3B takes too long to synthesize in the device budget).
$CLI bench "$OUT/qwen3-0.6b-bf16.gguf" --prompt 512 --gen 128 --reps 3 --backend cuda --capture-attention 0 --json > "$OUT/qwen3-0.6b-cuda-attn1.json" 2>&1
[ -f "$OUT/moe-tiny.gguf" ] || $CLI synth --arch qwen3-moe --dtype bf16 --out "$OUT/moe-tiny.gguf" > /dev/null
for r in "" --capture-routing; do
  $CLI bench "$OUT/moe-tiny.gguf" --prompt 512 --gen 128 --reps 3 --backend cuda $r --json > "$OUT/moe-tiny-cuda${r:+-routing}.json" 2>&1
done
# MoE prompts: the grouped expert kernels against each expert's cuBLAS products on the host's routing
$CLI bench "$OUT/moe-tiny.gguf" --prompt 512 --gen 8 --reps 3 --backend cuda --gpu-grouped-moe off --json > "$OUT/moe-tiny-cuda-grouped-off.json" 2>&1
# Decode deep in the context (split-key attention: 16 query heads alone would leave most SMs idle),
# and each of the backend's choices against its alternative (bench --gpu-*), on Qwen3-0.6B.
Q="$OUT/qwen3-0.6b-bf16.gguf"
ab() { name=$1; shift; $CLI bench "$Q" --backend cuda --json "$@" > "$OUT/ab-$name.json" 2>&1; }
ab ctx8k --prompt 8192 --gen 64
ab ctx8k-nosplit --prompt 8192 --gen 64 --gpu-splits 1
ab ctx8k-notiles --prompt 8192 --gen 8 --gpu-tiles off
ab ctx8k-notc --prompt 8192 --gen 8 --gpu-tc-attention off
ab nofusion --prompt 512 --gen 128 --gpu-fusion off
ab nographs --prompt 512 --gen 128 --gpu-graphs off
# Long prompts of 8B: attention is ~6% of the flops at 4k tokens, but on f32 cores it can take as long
# as the BF16 products (tensor cores against f32 tiles)
Q="$OUT/llama3.1-8b-bf16.gguf"
ab 8b-pp4k --prompt 4096 --gen 8
ab 8b-pp4k-notc --prompt 4096 --gen 8 --gpu-tc-attention off
for f in "$OUT"/qwen3-0.6b-cuda-attn1.json "$OUT"/ab-*.json "$OUT"/moe-tiny-cuda*.json; do
  [ -s "$f" ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%-32s prefill %9.1f  decode %8.1f tok/s (%s)' % (sys.argv[1].split('/')[-1], d['prefill_tokens_per_s'], d['decode_tokens_per_s'], d.get('decode_mode','')))" "$f"
done
printf '%-14s %-6s %12s %12s\n' model backend pp512_tok/s tg_tok/s
for f in "$OUT"/*-cuda.json "$OUT"/*-cpu.json; do
  [ -s "$f" ] && python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%-14s %-6s %12.1f %12.1f' % (sys.argv[1].split('/')[-1].rsplit('-',1)[0], d['backend'][:6], d['prefill_tokens_per_s'], d['decode_tokens_per_s']))" "$f"
done
