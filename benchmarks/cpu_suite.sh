#!/usr/bin/env bash
# The CPU measurements behind BENCHMARKS.md: every command appends its JSON lines (with
# the command, the date and the machine) to one results file, and make_doc.py renders
# BENCHMARKS.md from benchmarks/results/. Needs the [bench] extra (PyTorch).
#
#   bash benchmarks/cpu_suite.sh [RESULTS_FILE] [full|quick]
#
# "full" (the default) is for a quiet machine: the sizes of the step and epoch targets
# (tiny_cnn and small_cnn at batch 256, ResNet-18 at batch 32, a 60,000-image epoch at
# batch 512, the loss up to N = 4096), PyTorch with its default threads, eager and
# torch.compile; about an hour on a 2-core CPU, much of it torch.compile. "quick"
# shrinks batches, dataset and repetitions for a machine shared with other jobs, runs
# PyTorch on one thread (its threads wait on each other when the cores are taken) and
# skips torch.compile except for tiny_cnn.
set -euo pipefail
OUT=${1:-benchmarks/results/$(date -u +%F)-cpu.jsonl}
SIZE=${2:-full}
bench() { python -m hncl_jax.benchmark --out="$OUT" "$@"; }
if [ "$SIZE" = quick ]; then
  B=64 RB=8 N=12000 LN=512,2048 STEPS=3 REP=3 EP=2 COMPILE=--torch_compile=false
  THREADS=--torch_threads=1
else
  B=256 RB=32 N=60000 LN=512,2048,4096 STEPS=10 REP=7 EP=3 COMPILE= THREADS=
fi
tiny="--model=tiny_cnn --batch=$B --num_classes=10"
small="--model=small_cnn --batch=$B --num_classes=10 --image_size=28 --channels=1"

# (1) The allocator's huge pages (runtime.tune_process), off and on in turn, 2 pairs.
for _ in 1 2; do
  HNCL_JAX_NO_REEXEC=1 bench --mode=step $tiny --steps=$STEPS
  bench --mode=step $tiny --steps=$STEPS
done

# (1b) The library's XLA:CPU flag (runtime.configure_xla), off and on in turn, 2 pairs
# per model, each run timing PyTorch eager in the same process.
for model in "$small" "--model=resnet18 --batch=$RB --num_classes=100 --warmup=1"; do
  for _ in 1 2; do
    HNCL_JAX_XLA_DEFAULTS=0 bench --mode=step $model --steps=$STEPS --repeats=$REP \
      --peer=torch --torch_compile=false $THREADS
    bench --mode=step $model --steps=$STEPS --repeats=$REP --peer=torch --torch_compile=false \
      $THREADS
  done
done

# (2) The train step against PyTorch (eager and torch.compile), interleaved.
bench --mode=step $tiny --steps=$STEPS --repeats=$REP --peer=torch $THREADS
bench --mode=step $small --steps=$STEPS --repeats=$REP --peer=torch $THREADS $COMPILE
bench --mode=step $small --depth=2 --steps=$STEPS --repeats=$REP --peer=torch $THREADS \
  --torch_compile=false
bench --mode=step --model=resnet18 --batch=$RB --num_classes=100 --steps=$STEPS --warmup=1 \
  --repeats=$REP --peer=torch $THREADS $COMPILE

# (3) A Fashion-MNIST-shaped epoch (28 × 28 × 1, batch 512) of the small CNN against PyTorch.
bench --mode=epoch --model=small_cnn --batch=512 --num_classes=10 --image_size=28 --channels=1 \
  --dataset_size=$N --epochs=$EP --peer=torch $THREADS --torch_compile=false

# (4) The loss kernel (value and gradient w.r.t. z) against PyTorch.
bench --mode=loss --loss_n=$LN --loss_k=256 --loss_cases=anchor --loss_cases=reweighted \
  --naive_max_n=0 --steps=$STEPS --repeats=$REP --peer=torch $THREADS $COMPILE
