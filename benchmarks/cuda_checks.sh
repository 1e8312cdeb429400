#!/bin/bash
# Issue 13's CUDA checks in one run, on a machine with a GPU and bench installed (`pip install -e .`):
#   1. benchmarks/eval_speed.py on CUDA, with batched seeds, eager and as a CUDA graph, 5 seeds (bench against
#      DatasetCondensation's loop); then issue 13's goal case alone (CIFAR shape, IPC 10) at 300 epochs, where a
#      graph's warm-up and capture weigh on 301 passes instead of 21
#   2. benchmarks/batched_seeds.py on CUDA, with the CUDA graph step: its accuracies against one at a time are the
#      check BENCH_CUDA_GRAPHS waits for (bench.batched.graphs_wanted)
#   3. benchmarks/grouped_vs_vmap.py on CUDA: the seeds' networks as grouped convolutions against torch.func's vmap
#   4. suites/demo.yaml on CUDA and then on the CPU with 14 workers, each into its own store under /tmp, and
#      their reports' results.json / table.md side by side (CUDA against CPU accuracies); last, as the CPU run is
#      the longest and was measured before (README: Performance), so a device's time limit cuts it first
# Everything lands in $OUT. On an NVIDIA H200 with 16 cores it took 234 s (README: Performance), before the CUDA
# graph ways were added to 1 and 3.
# Usage: OUT=/tmp/cuda-checks bash benchmarks/cuda_checks.sh
set -o pipefail
: "${OUT:?set OUT to a folder for the results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
LOG=$OUT/log.txt
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, sys; print(sys.version); print(torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$LOG"
echo "== eval_speed" | tee -a "$LOG"
timeout 200 python3 benchmarks/eval_speed.py --device cuda --variants batched graphed --seeds 0 1 2 3 4 --epochs 20 2>&1 \
  | tee "$OUT/eval_speed.txt"
timeout 90 python3 benchmarks/eval_speed.py --device cuda --variants batched graphed --seeds 0 1 2 3 4 --epochs 300 \
  --cases cifar:10 2>&1 | tee "$OUT/eval_speed_300.txt"
echo "== batched_seeds" | tee -a "$LOG"
timeout 90 python3 benchmarks/batched_seeds.py --device cuda --graphs 2>&1 | tee "$OUT/batched.txt"
echo "== grouped_vs_vmap" | tee -a "$LOG"
timeout 60 python3 benchmarks/grouped_vs_vmap.py --device cuda --steps 50 2>&1 | tee "$OUT/grouped.txt"
for device in cuda cpu; do
  echo "== demo $device" | tee -a "$LOG"
  root=$(mktemp -d)
  printf 'store: store\nreports: reports\n' > "$root/bench.yaml"
  workers=$([ "$device" = cpu ] && echo 14 || echo 1)
  start=$(date +%s)
  timeout 190 python3 -m bench.cli --config "$root/bench.yaml" run suites/demo.yaml --device "$device" \
    --workers "$workers" 2>&1 | tail -5 | tee -a "$LOG"
  echo "demo $device wall $(( $(date +%s) - start )) s" | tee -a "$LOG"
  python3 -m bench.cli --config "$root/bench.yaml" report suites/demo.yaml > /dev/null 2>> "$LOG"
  cp "$root/reports/demo/results.json" "$OUT/demo_$device.json"
  cp "$root/reports/demo/table.md" "$OUT/demo_$device.md"
done
