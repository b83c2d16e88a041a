#!/usr/bin/env bash
# The CPU measurements behind BENCHMARKS.md: every command appends its JSON lines (with
# the command, the date and the machine) to one results file, and make_doc.py renders
# BENCHMARKS.md from benchmarks/results/. Needs the [bench] extra (PyTorch).
#
#   bash benchmarks/cpu_suite.sh [RESULTS_FILE] [full|quick]
#
# "full" (the default) uses the sizes of the step and epoch targets (tiny_cnn and
# small_cnn at batch 256, ResNet-18 at batch 32, a 60,000-image epoch at batch 512, the
# loss up to N = 4096) and takes about an hour on a quiet 2-core CPU, most of it
# torch.compile; "quick" shrinks batches, dataset and repetitions for a machine shared
# with other jobs, and skips torch.compile except for tiny_cnn.
set -euo pipefail
OUT=${1:-benchmarks/results/$(date -u +%F)-cpu.jsonl}
SIZE=${2:-full}
bench() { python -m hncl_jax.benchmark --out="$OUT" "$@"; }
if [ "$SIZE" = quick ]; then
  B=64 RB=8 N=12000 LN=512,2048 STEPS=3 REP=3 EP=2 COMPILE=--torch_compile=false
else
  B=256 RB=32 N=60000 LN=512,2048,4096 STEPS=10 REP=5 EP=3 COMPILE=
fi
tiny="--model=tiny_cnn --batch=$B --num_classes=10"
small="--model=small_cnn --batch=$B --num_classes=10 --image_size=28 --channels=1"

# (1) The allocator's huge pages (runtime.tune_process), off and on in turn, 2 pairs.
for _ in 1 2; do
  HNCL_JAX_NO_REEXEC=1 bench --mode=step $tiny --steps=$STEPS
  bench --mode=step $tiny --steps=$STEPS
done

# (2) The train step against PyTorch (eager and torch.compile), interleaved; PyTorch
# with its default threads and with one (faster on a CPU that other jobs share).
bench --mode=step $tiny --steps=$STEPS --repeats=$REP --peer=torch
bench --mode=step $tiny --steps=$STEPS --repeats=$REP --peer=torch --torch_threads=1 $COMPILE
bench --mode=step $small --steps=$STEPS --repeats=$REP --peer=torch --torch_threads=1 $COMPILE
bench --mode=step --model=resnet18 --batch=$RB --num_classes=100 --steps=$STEPS --warmup=1 \
  --repeats=$REP --peer=torch --torch_threads=1 $COMPILE

# (3) A Fashion-MNIST-shaped epoch (28 × 28 × 1, batch 512) against PyTorch.
bench --mode=epoch --model=tiny_cnn --batch=512 --num_classes=10 --image_size=28 --channels=1 \
  --dataset_size=$N --epochs=$EP --peer=torch --torch_threads=1 $COMPILE

# (4) The loss kernel (value and gradient w.r.t. z) against PyTorch.
bench --mode=loss --loss_n=$LN --loss_k=256 --loss_cases=anchor --loss_cases=reweighted \
  --naive_max_n=0 --steps=$STEPS --repeats=$REP --peer=torch --torch_threads=1 $COMPILE
