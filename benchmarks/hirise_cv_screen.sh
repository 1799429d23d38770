#!/usr/bin/env bash
# Screen fine-tune recipes for HiRISE by grouped 5-fold cross-validation, several at once on one
# GPU (or sequentially on the CPU with JOBS_AT_ONCE=1 DEVICE=cpu: about 50 min per recipe on 2
# cores). Each recipe keeps its folds' held-out logits (8 test-time views, so that the default's
# 4 rotations and ensembles can be scored afterwards with `ml cv-combine --views 4`).
#
#   DATA=../shared/data/hirise RESULTS=/tmp/screen benchmarks/hirise_cv_screen.sh [NAME ...]
#
# NAME picks recipes of the list below (default: all). Logs, reports and kept folds go to
# $RESULTS/NAME.log, NAME.json and NAME/; each recipe stops after $LIMIT_S seconds (its finished
# folds stay kept, and a rerun reads them back).
set -u
DATA=${DATA:-../shared/data/hirise}
RESULTS=${RESULTS:-/tmp/hirise-cv-screen}
DEVICE=${DEVICE:-auto}
LIMIT_S=${LIMIT_S:-3600}
PYTHON=${PYTHON:-python3}
export SUPERVISING_UI_THREADS=${SUPERVISING_UI_THREADS:-2} PYTHONUNBUFFERED=1

declare -A RECIPES=(
  [percentile]="--stretch percentile"
  [percentile-seed1]="--stretch percentile --seed 1"
  [mixed]="--stretch mixed"
  [smooth]="--stretch percentile --set label_smoothing=0.1"
  [crops]="--stretch percentile --set crop_scale=0.6"
  [epochs12]="--stretch percentile --epochs 12"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(percentile percentile-seed1 mixed smooth crops epochs12)
mkdir -p "$RESULTS"
for name in "${names[@]}"; do
  options=${RECIPES[$name]:?unknown recipe $name}
  # shellcheck disable=SC2086
  timeout "$LIMIT_S" "$PYTHON" -m supervising_ui.ml.cli cv --manifest "$DATA/manifest.csv" \
    --image-root "$DATA/images" --group-column source_id --folds 5 --mode finetune \
    --tta-views 8 --device "$DEVICE" $options --keep-folds "$RESULTS/$name" \
    --json "$RESULTS/$name.json" >"$RESULTS/$name.log" 2>&1 &
  if [ "${JOBS_AT_ONCE:-${#names[@]}}" -le "$(jobs -rp | wc -l)" ]; then wait -n; fi
done
wait
grep -h "accuracy (mean" "$RESULTS"/*.log
