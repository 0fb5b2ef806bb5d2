#!/usr/bin/env bash
# `make demo`: the synth recipe end to end on a CPU.
#
#   ./demo.sh [--size default|large|tiny] [--world-size 1] [--workdir DIR]
#             [--pretrain-updates N] [--finetune-updates N]   (default: the configs' values)
#   ./demo.sh --quick true    (`make demo-quick`: --size tiny, 20 pretraining and 30
#                              fine-tuning updates, one LM scale; a pipeline check, minutes)
#
# Another --size works in its own directory (default: demo_<size>/, with links to the recipe),
# so its data/, download/ and exp/ never mix with the default corpus's.
#
# prepare (corpus, manifests, cuts, units, graphs) -> pretrain tiny-hourglass -> fine-tune it on
# train-10min -> fine-tune from scratch on train-10min (the baseline) -> decode both with
# ctc-greedy and 1best over HLG -> the results table (also written to exp/demo_results.md).
# Every step resumes or skips what is already done, so an interrupted demo continues.
set -euo pipefail
cd "$(dirname "$0")"

size=default
world_size=1
pretrain_config=conf/pretrain_tiny_hourglass.yaml
finetune_config=conf/finetune_tiny_10min.yaml
pretrain_updates=
finetune_updates=
lm_scales=                   # 1best-HLG sweep (default "0.6 1.0 1.5"); each scale is one more search
workdir=                     # "." for the default size, demo_<size> for the others
quick=false                  # true: the pipeline check of `make demo-quick`

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --quick --size --world-size --workdir --pretrain-config --finetune-config
         --pretrain-updates --finetune-updates --lm-scales"
. ./utils/parse_options.sh
. ./utils/log.sh

if [ "$quick" = true ]; then
  if [ "$size" != default ] && [ "$size" != tiny ]; then
    echo "$0: --quick true runs the tiny corpus; drop --size $size (or drop --quick)" >&2
    exit 2
  fi
  # enough updates for every stage to run and write its outputs, no more
  size=tiny
  pretrain_updates=${pretrain_updates:-20}
  finetune_updates=${finetune_updates:-30}
  lm_scales=${lm_scales:-1.0}
fi
[ -n "$lm_scales" ] || lm_scales="0.6 1.0 1.5"

if [ -z "$workdir" ]; then
  if [ "$size" = default ]; then workdir=.; else workdir=demo_$size; fi
fi
if [ "$workdir" != . ]; then
  mkdir -p "$workdir"
  for f in prepare.sh run.sh demo.sh conf local utils; do
    [ -e "$workdir/$f" ] || ln -s "$PWD/$f" "$workdir/$f"
  done
  log "working in $PWD/$workdir (data/, download/, exp/ of size $size)"
  cd "$workdir"
fi

start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

pretrain_overrides=(); [ -z "$pretrain_updates" ] || pretrain_overrides=("trainer.max_updates=$pretrain_updates")
finetune_overrides=(); [ -z "$finetune_updates" ] || finetune_overrides=("trainer.max_updates=$finetune_updates")
suffix=""
[ "$size" = default ] || suffix="_$size"
pre=exp/demo_pretrain$suffix
ft_pre=exp/demo_ft_10min_pretrained$suffix
ft_scratch=exp/demo_ft_10min_scratch$suffix

log "prepare.sh (size $size)"
./prepare.sh --size "$size" --bpe-vocab-sizes ""   # the demo decodes with chars only
log "prepare done after $(elapsed)"

./run.sh --stage 1 --stop-stage 1 --world-size "$world_size" --train-config "$pretrain_config" \
  --exp-dir "$pre" ${pretrain_overrides[@]+"${pretrain_overrides[@]}"}
log "pretraining done after $(elapsed)"

./run.sh --stage 2 --stop-stage 3 --world-size "$world_size" --train-config "$finetune_config" \
  --init "$pre" --exp-dir "$ft_pre" --decode-opts "--lm-scales $lm_scales" \
  ${finetune_overrides[@]+"${finetune_overrides[@]}"}
log "fine-tuning + decoding of the pretrained model done after $(elapsed)"

./run.sh --stage 2 --stop-stage 3 --world-size "$world_size" --train-config "$finetune_config" \
  --init scratch --exp-dir "$ft_scratch" --decode-opts "--lm-scales $lm_scales" \
  ${finetune_overrides[@]+"${finetune_overrides[@]}"}
log "fine-tuning + decoding of the from-scratch baseline done after $(elapsed)"

python -m hourglass_w2v2.bin.results "$ft_pre" "$ft_scratch" --baseline "$ft_scratch" \
  --out exp/demo_results$suffix.md
log "demo finished in $(elapsed); table in exp/demo_results$suffix.md. The list under it compares" \
  "the pretrained model with the from-scratch baseline (negative: pretraining helped)."
if [ "$size" = tiny ]; then
  log "This was the pipeline check: every stage ran and fed the next. The tiny corpus and a" \
    "few dozen updates say nothing about the method; 'make demo' compares the pretrained model" \
    "with the from-scratch baseline, 'make demo-large' makes that comparison with a longer run."
elif [ "$size" = default ]; then
  log "At this size pretraining is 150 updates (conf/pretrain_tiny_hourglass.yaml), far too" \
    "few to pay off; 'make demo-large' pretrains 12,000 updates on a 12 h corpus and is the" \
    "comparison that shows it (RESULTS.md, with its wall time)."
fi
