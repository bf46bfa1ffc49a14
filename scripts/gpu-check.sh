#!/usr/bin/env bash
# The device check of issue #14, on a machine with an NVIDIA GPU, a Rust toolchain, python3 with torch and
# torchvision (and network for the first step):
#   bash scripts/gpu-check.sh [--no-tests] [--iters N] [--per-class N] [--out DIR]
# 1. installs the CUDA libtorch (`DALAB_TORCH=cuda cargo xtask setup`) and builds dalab (release);
# 2. runs the test suite (`cargo nextest run --workspace`; skipped with --no-tests);
# 3. writes Office-31-shaped synthetic images (31 classes, 300x300 JPEGs, amazon and webcam) and exports a
#    ResNet-50 with random weights (scripts/export_torchvision_backbone.py --random);
# 4. trains DANN on them with TLlib's Office-31 recipe (experiments/images/office31-dann.yaml's settings, batch
#    32 + 32) twice, for 50 and for 50 + N iterations, and takes dalab's training images/s from the difference
#    (startup and the one evaluation cancel out), sampling the GPU's memory with nvidia-smi meanwhile;
# 5. runs the PyTorch peer (scripts/peers/torch_resnet_dann_bench.py: the same model, batch, transforms and
#    optimiser, AMP off, bf16 and fp16) and prints one table, also written to OUT/gpu-check.md.
# dalab's AMP is `train.amp: fp16` (float16 autocast + dynamic loss scaling); bf16 is the peer's only.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=1; ITERS=200; PER_CLASS=8; OUT=${OUT:-target/gpu-check}
while [ $# -gt 0 ]; do
  case "$1" in
    --no-tests) TESTS=0 ;;
    --iters) ITERS=$2; shift ;;
    --per-class) PER_CLASS=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: this check needs an NVIDIA GPU" >&2; exit 1; }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); W="$OUT/work"; mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

echo "== 1. CUDA libtorch and a release build"
DALAB_TORCH=cuda cargo xtask setup
cargo build --release -p dalab-cli
DALAB=target/release/dalab

if [ "$TESTS" = 1 ]; then
  echo "== 2. the test suite"
  cargo nextest run --workspace 2>&1 | tee "$OUT/tests.log" | tail -3
fi

echo "== 3. synthetic Office-31-shaped images and a ResNet-50 (random weights)"
python3 - "$W/office31" "$PER_CLASS" <<'PY'
import os, sys, random
from PIL import Image
root, per = sys.argv[1], int(sys.argv[2])
classes = [l.strip(' ",\n') for l in open("datasets/images/office31.yaml").read().split("classes: [", 1)[1].split("]")[0].split(",")]
rnd = random.Random(0)
for dom in ["amazon", "dslr", "webcam"]:
    for c in classes:
        d = os.path.join(root, dom, "images", c)
        os.makedirs(d, exist_ok=True)
        for i in range(per if dom != "dslr" else 1):
            Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3)).save(os.path.join(d, f"frame_{i:04}.jpg"), quality=90)
print(f"{len(classes)} classes, {per} images per class in amazon and webcam under {root}")
PY
[ -f "$W/resnet50.pt" ] || python3 scripts/export_torchvision_backbone.py resnet50 "$W/resnet50.pt" --random

echo "== 4. dalab: DANN, ResNet-50, batch 32 + 32"
memlog() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$1" & echo $!; }
run_dalab() {  # iterations, name, amp -> seconds of the trial
  local n=$1 name=$2 amp=${3:-off}
  sed -e "s/^name: office31-dann/name: $name/" -e "s/^  iterations: 20000/  iterations: $n/" \
      -e "s/^  eval_interval: 1000/  eval_interval: $n/" -e "s/^  checkpoint_interval: 1000/  checkpoint_interval: 0/" \
      -e "s/^seeds: \[0, 1, 2\]/seeds: [0]/" -e "s/^tasks: .*/tasks: [A→W]/" \
      -e "s|^  name: image-folders|  name: office31\n  root: office31|" \
      -e "/^    - {name: [ADW], folder/d" -e "/^  domains:/d" \
      experiments/images/office31-dann.yaml > "$W/$name.yaml"
  "$DALAB" run "$W/$name.yaml" --runs-dir "$W/runs" --data-dir "$W" --set "model.backbone.path=$W/resnet50.pt" \
    --set "train.amp=$amp" >&2
  python3 -c "import json,glob; print(json.load(open(glob.glob('$W/runs/$name/*/result.json')[0]))['seconds'])"
}
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
declare -A dalab_ips dalab_mem
for amp in off fp16; do
  pid=$(memlog "$W/mem-dalab-$amp.csv")
  t1=$(run_dalab 50 "gpu-check-short-$amp" $amp)
  t2=$(run_dalab $((50 + ITERS)) "gpu-check-long-$amp" $amp)
  kill "$pid" || true
  dalab_mem[$amp]=$(( $(sort -n "$W/mem-dalab-$amp.csv" | tail -1) - base ))
  dalab_ips[$amp]=$(python3 -c "print(round($ITERS * 64 / ($t2 - $t1), 1))")
  echo "dalab, amp $amp: ${dalab_ips[$amp]} images/s, peak GPU memory ${dalab_mem[$amp]} MiB above idle"
done

echo "== 5. the PyTorch peer"
rows=()
for amp in off bf16 fp16; do
  rows+=("$(python3 scripts/peers/torch_resnet_dann_bench.py --root "$W/office31" --iters "$ITERS" --amp $amp --workers "$(( $(nproc) / 2 ))")")
done
{
  echo "GPU: $(cat "$OUT/gpu.txt"); commit $(git rev-parse --short HEAD); $(date -u +%F)"
  echo
  echo "| side | AMP | images/s | ratio dalab / PyTorch (same AMP) | peak GPU memory |"
  echo "|---|---|---|---|---|"
  ips() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['images_per_s'])" "$1"; }
  torch_off=$(ips "${rows[0]}"); torch_fp16=$(ips "${rows[2]}")
  echo "| dalab | off | ${dalab_ips[off]} | $(python3 -c "print(round(${dalab_ips[off]} / $torch_off, 2))") | ${dalab_mem[off]} MiB (nvidia-smi, above idle) |"
  echo "| dalab | fp16 | ${dalab_ips[fp16]} | $(python3 -c "print(round(${dalab_ips[fp16]} / $torch_fp16, 2))") | ${dalab_mem[fp16]} MiB (nvidia-smi, above idle) |"
  for r in "${rows[@]}"; do
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"| PyTorch {d['torch']} | {d['amp']} | {d['images_per_s']} | | {d['peak_gpu_mib']} MiB (max_memory_allocated) |\")" "$r"
  done
} | tee "$OUT/gpu-check.md"
