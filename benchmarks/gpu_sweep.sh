#!/bin/bash
# One device call: the recipe sweep (benchmarks/bench_recipe_sweep.py, 24 recipes x 2 seeds)
# + the paper-preset GPU benchmark (benchmarks/bench_gpu.py --trainer) + the CUDA tests.
#
# Run it through the device tool from the repository root, carrying the wheels in .whl/
# (dependencies the device's Python lacks; installed into /tmp/site there):
#     run(command="bash benchmarks/gpu_sweep.sh", carry=[".whl"], timeout_s=600)
# $OUT (set by the device tool) collects sweep.jsonl (one JSON line per finished run),
# sweep.err (the runs' stderr) and gpu.json (bench_gpu.py). Time budgets, in seconds:
# SWEEP_S (default 200: the sweep's deadline; runs still going then are killed), BENCH_S
# (240) and TEST_S (80).
set -u
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
nvidia-smi -L
python3 -c "import torch, timm; print(torch.__version__, timm.__version__, torch.cuda.is_available())"

# two screens of the issue-12 shape (seeds 1 and 2), made and packed in parallel
S=/tmp/scr
mkdir -p $S
SHAPE="--plate-format 96 --sirnas-per-plate 40 --plates-per-experiment 4 --positive-controls 4 --experiments-per-cell-type 3 --test-experiments-per-cell-type 1 --missing-wells 0 --image-size 64"
for seed in 1 2; do
    (python3 -m deepnoise_engine make-demo --out $S/s96_$seed --seed $seed $SHAPE \
        && python3 -m deepnoise_engine pack $S/s96_$seed >/dev/null) &
done
wait
date

# the recipes: "tag options", each run on both screens
: > $OUT/sweep.jsonl
while read -r tag args; do
    for seed in 1 2; do echo "$S/s96_$seed --tag $tag $args"; done
done > /tmp/jobs.txt <<'CONFIGS'
base40 --arch cnn5 --epochs 40
arc_auto80 --arch cnn5 --epochs 80 --head arcface
mt_arc80 --arch cnn5 --epochs 80 --head arcface --mt 1
xc1_w50_80 --arch xc_1_3_2 --width 0.5 --epochs 80 --lr 3e-3
xc1_w25_80 --arch xc_1_3_2 --width 0.25 --epochs 80 --lr 3e-3
base80 --arch cnn5 --epochs 80
arc_s30_80 --arch cnn5 --epochs 80 --head arcface --s 30
w2_80 --arch cnn5 --epochs 80 --width 2
cnn7_80 --arch cnn7 --epochs 80
both80 --arch cnn5 --epochs 80 --both 1
noctrlbal80 --arch cnn5 --epochs 80 --balctrl 0
s2_80 --arch cnn5s2 --epochs 80
xc2_w125_80 --arch xc_2_7_2 --width 0.125 --epochs 80 --lr 3e-3
xc1_w50_arc80 --arch xc_1_3_2 --width 0.5 --epochs 80 --lr 3e-3 --head arcface
lr3e3_80 --arch cnn5 --epochs 80 --lr 3e-3
arc_s15_80 --arch cnn5 --epochs 80 --head arcface --s 15
arc_auto_m0_80 --arch cnn5 --epochs 80 --head arcface --m 0
mt_soft80 --arch cnn5 --epochs 80 --mt 1
mt10_arc80 --arch cnn5 --epochs 80 --head arcface --mt 10 --ema 0.9
bs64_80 --arch cnn5 --epochs 80 --bs 64 --lr 2e-3
xc1_w50_m0_80 --arch xc_1_3_0 --width 0.5 --epochs 80 --lr 3e-3
wd1e3_80 --arch cnn5 --epochs 80 --wd 1e-3
base160 --arch cnn5 --epochs 160
big_cnn7w2_arc200 --arch cnn7 --width 2 --epochs 200 --head arcface
CONFIGS

# 12 runs at a time; each gets the time left until the deadline (runs that cannot finish
# are cut, and a run is not started with 15 s or less left)
SWEEP_START=$(date +%s)
export DEADLINE=$(( SWEEP_START + ${SWEEP_S:-200} ))
xargs -P 12 -L 1 sh -c 'left=$(( DEADLINE - $(date +%s) )); [ $left -gt 15 ] && timeout -s KILL $left python3 benchmarks/bench_recipe_sweep.py "$@" >> $OUT/sweep.jsonl 2>>$OUT/sweep.err; true' _ < /tmp/jobs.txt
echo "sweep rc $? in $(( $(date +%s) - SWEEP_START )) s; $(wc -l < $OUT/sweep.jsonl) results"
tail -3 $OUT/sweep.err

timeout ${BENCH_S:-240} python3 benchmarks/bench_gpu.py --json $OUT/gpu.json --trainer 2>&1 | tail -20
timeout ${TEST_S:-80} python3 -m pytest -q -p no:cacheprovider tests/deepnoise_engine/train/test_train_cuda.py 2>&1 | tail -5
date
