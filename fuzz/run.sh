#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), two at a time, from seed corpora; prints each target's
# last libFuzzer status line and any crash. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The memory cap: -rss_limit_mb=2048 and -malloc_limit_mb=512 (a single allocation above 512 MiB is a finding).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
cargo +nightly run --quiet --release --example seeds
# HDF5 seeds from h5py (contiguous, chunked + deflate + shuffle + Fletcher-32, a group), in a throwaway venv.
if [ ! -d corpus/hdf5 ]; then
  python3 -m venv target/h5venv && target/h5venv/bin/pip install --quiet numpy h5py
  mkdir -p corpus/hdf5
  target/h5venv/bin/python - <<'PY'
import h5py, numpy as np
with h5py.File("corpus/hdf5/plain.h5", "w") as f:
    f["x"] = np.arange(6, dtype="<f8").reshape(2, 3)
    g = f.create_group("g")
    g.create_dataset("y", data=np.arange(12, dtype=">i4").reshape(3, 4), chunks=(2, 2), compression="gzip", shuffle=True, fletcher32=True)
    g["z"] = np.array([1, 0, 2], dtype="u1")
PY
fi
targets=(npy npz mat hdf5 svmlight idx png_tar csv)
cargo +nightly fuzz build --release
run() {
  local t=$1
  cargo +nightly fuzz run --release "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -max_len=8192 -print_final_stats=1 > "target/fuzz-$t.log" 2>&1 \
    && echo "$t: ok: $(grep -a -E '^#[0-9]+.*(DONE|pulse)' "target/fuzz-$t.log" | tail -1)" \
    || { echo "$t: FINDING (see fuzz/target/fuzz-$t.log and fuzz/artifacts/$t/)"; tail -30 "target/fuzz-$t.log"; }
}
mkdir -p target
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" & run "${targets[i+1]}" & wait
done
