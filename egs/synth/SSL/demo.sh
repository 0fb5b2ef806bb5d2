#!/usr/bin/env bash
# `make demo`: self-supervised pretraining paying off, end to end on a CPU.
#
#   ./demo.sh                  (`make demo`: the 12 h corpus, 5,000 pretraining and 2,400
#                               fine-tuning updates; ~25-35 min on 2 cores)
#   ./demo.sh --quick true     (`make demo-quick`: the tiny corpus, 20 pretraining and 30
#                               fine-tuning updates; a pipeline check, minutes)
#   ./demo.sh --finetune-seed 2   (after `make demo`: both fine-tunings again at another seed,
#                               from the same pretraining, in exp dirs ending in _seed2; ~9 min)
#   ./demo.sh --tag large --pretrain-config conf/pretrain_tiny_hourglass_large.yaml \
#             --finetune-config conf/finetune_tiny_10min_large.yaml \
#             --vanilla-config conf/pretrain_tiny_large.yaml    (`make demo-large`)
#
# prepare (corpus, manifests, cuts, units, graphs) -> pretrain tiny-hourglass -> fine-tune it on
# train-10min -> fine-tune the same architecture from scratch on train-10min (the baseline) ->
# decode both with ctc-greedy and 1best over HLG -> the results table (exp/demo_results*.md).
# The two fine-tunings (with their decoding) run side by side, each on half the cores and logging
# to exp/demo_ft_*/demo.log; on 2 cores that is faster than one after the other on both cores.
# With --vanilla-config, vanilla tiny is also pretrained for the wall-clock time the hourglass
# took, then fine-tuned and decoded the same way.
#
# The --size large corpus lives in this directory; another --size works in its own directory
# (demo_<size>/, with links to the recipe), so its data/ and exp/ never mix with this one's.
# Exp dirs are exp/demo_{pretrain,ft_10min_pretrained,ft_10min_scratch}<_tag>, the fine-tunings'
# with _seed<N> appended when --finetune-seed is given.
# Every step resumes or skips what is already done, so an interrupted demo continues.
set -euo pipefail
cd "$(dirname "$0")"

size=large
tag=                         # exp dir suffix ("_TAG"); --quick: tiny
world_size=1
pretrain_config=conf/pretrain_tiny_hourglass_demo.yaml
finetune_config=conf/finetune_tiny_10min_demo.yaml
vanilla_config=              # also pretrain vanilla tiny for the hourglass's wall-clock time
pretrain_updates=
finetune_updates=
finetune_seed=               # trainer.seed of both fine-tunings (default: the config's)
lm_scales=1.0                # 1best-HLG LM scales; each scale is one more search
workdir=                     # "." for --size large, demo_<size> for the others
quick=false                  # true: the pipeline check of `make demo-quick`
side_by_side=true            # fine-tune the two models at the same time (false: one by one)

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --quick --size --tag --world-size --workdir --pretrain-config --finetune-config
         --vanilla-config --pretrain-updates --finetune-updates --finetune-seed --lm-scales
         --side-by-side"
. ./utils/parse_options.sh
. ./utils/log.sh
. ./utils/side_by_side.sh

if [ "$quick" = true ]; then
  if [ "$size" != large ] && [ "$size" != tiny ]; then
    echo "$0: --quick true runs the tiny corpus; drop --size $size (or drop --quick)" >&2
    exit 2
  fi
  # enough updates for every stage to run and write its outputs, no more
  size=tiny
  tag=${tag:-tiny}
  pretrain_config=conf/pretrain_tiny_hourglass.yaml
  finetune_config=conf/finetune_tiny_10min.yaml
  pretrain_updates=${pretrain_updates:-20}
  finetune_updates=${finetune_updates:-30}
fi

if [ -z "$workdir" ]; then
  if [ "$size" = large ]; then workdir=.; else workdir=demo_$size; fi
fi
if [ "$workdir" != . ]; then
  mkdir -p "$workdir"
  for f in prepare.sh run.sh demo.sh conf local utils; do
    [ -e "$workdir/$f" ] || ln -s "$PWD/$f" "$workdir/$f"
  done
  cd "$workdir"
  log "working in $PWD (data/ and exp/ of size $size)"
fi

suffix=""
[ -z "$tag" ] || suffix="_$tag"
pre=exp/demo_pretrain$suffix
vanilla=exp/demo_pretrain_vanilla$suffix
ft_suffix=$suffix  # another fine-tuning seed gets exp dirs of its own, the same pretraining
[ -z "$finetune_seed" ] || ft_suffix="${suffix}_seed$finetune_seed"
ft_pre=exp/demo_ft_10min_pretrained$ft_suffix
ft_scratch=exp/demo_ft_10min_scratch$ft_suffix
ft_vanilla=exp/demo_ft_10min_vanilla$ft_suffix
results=exp/demo_results$ft_suffix.md

pretrain_overrides=(); [ -z "$pretrain_updates" ] || pretrain_overrides=("trainer.max_updates=$pretrain_updates")
finetune_overrides=()
[ -z "$finetune_updates" ] || finetune_overrides+=("trainer.max_updates=$finetune_updates")
[ -z "$finetune_seed" ] || finetune_overrides+=("trainer.seed=$finetune_seed")
[ "$world_size" = 1 ] || side_by_side=false  # each fine-tuning already uses every process

# Progress: every stage says where the demo is and what is left, from the stage times measured
# on 2-core VMs (RESULTS.md; for make demo, midway between the Intel and the AMD VM, which
# train at different speeds) scaled by how fast this machine has been so far.
# Reference seconds: prepare, pretraining, one fine-tuning + decoding, both side by side.
if [ "$size" = tiny ]; then ref_times=(20 50 20 25)
elif [ "$tag" = large ]; then ref_times=(300 3300 660 900)
else ref_times=(300 810 650 600); fi
names=("prepare" "pretraining"); ref=("${ref_times[0]}" "${ref_times[1]}")
if [ "$side_by_side" = true ]; then
  names+=("fine-tuning + decoding the pretrained model and the from-scratch baseline, side by side")
  ref+=("${ref_times[3]}")
else
  names+=("fine-tuning + decoding the pretrained model"
          "fine-tuning + decoding the from-scratch baseline")
  ref+=("${ref_times[2]}" "${ref_times[2]}")
fi
if [ -n "$vanilla_config" ]; then
  names+=("pretraining, fine-tuning + decoding vanilla tiny")
  ref+=($(( 60 + ref_times[1] + ref_times[2] )))
fi
num_stages=${#ref[@]}

# What an earlier run finished (a rerun, or --finetune-seed after the demo) takes seconds: those
# stages say so and count nothing towards the time left.
already=()
if [ -f download/.synth.done ] && [ -f data/.lang.done ] && [ -f data/.graphs.done ] &&
   [ -f data/manifests/.synth_cuts.done ]; then
  already[0]="prepare.sh's stages are done"
fi
pretrained=""
if [ -f "$pre/train_info.json" ]; then  # a first run does not pay for starting Python here
  pretrained=$(python - "$pre" "$pretrain_config" ${pretrain_overrides[@]+"${pretrain_overrides[@]}"} <<'PY'
import json, sys
from pathlib import Path
from hourglass_w2v2.training.config import load_config
done = json.loads((Path(sys.argv[1]) / "train_info.json").read_text())["updates"]
print(done if done >= load_config(sys.argv[2], sys.argv[3:]).trainer.max_updates else "")
PY
  ) || pretrained=""  # a config error is run.sh's to report, in its own words
fi
[ -z "$pretrained" ] || already[1]="$pre is at update $pretrained"
for i in "${!already[@]}"; do ref[i]=0; done

start=$(date +%s)
done_ref=0        # reference seconds of the stages done
timed_ref=0       # ... of those that ran here (not skipped as already done)
timed=0           # and the seconds they took
stage=0
stage_t0=$start
stage_start() {  # logs "[i/n] NAME: about X min; about Y min left of the demo"
  local total=0 j elapsed scale_pct left
  for j in "${ref[@]}"; do total=$(( total + j )); done
  stage_t0=$(date +%s)
  elapsed=$(( stage_t0 - start ))
  scale_pct=100
  [ "$timed_ref" -le 60 ] || scale_pct=$(( 100 * timed / timed_ref ))
  left=$(( (total - done_ref) * scale_pct / 100 ))
  if [ -n "${already[stage]:-}" ]; then
    log "[$(( stage + 1 ))/$num_stages] ${names[$stage]}: done already (${already[stage]});" \
      "about $(( (left + 59) / 60 )) min left of the demo"
    return
  fi
  log "[$(( stage + 1 ))/$num_stages] ${names[$stage]}: about" \
    "$(( (ref[stage] * scale_pct / 100 + 59) / 60 )) min;" \
    "about $(( (left + 59) / 60 )) min left of the demo ($(( elapsed / 60 )) min so far)"
}
stage_done() {
  local took=$(( $(date +%s) - stage_t0 ))
  # a stage that took under a tenth of its reference time was mostly skipped (already done)
  if [ -z "${already[stage]:-}" ] && [ $(( took * 10 )) -ge "${ref[stage]}" ]; then
    timed_ref=$(( timed_ref + ref[stage] )); timed=$(( timed + took ))
  fi
  done_ref=$(( done_ref + ref[stage] )); stage=$(( stage + 1 ))
}

stage_start
./prepare.sh --size "$size" --bpe-vocab-sizes ""   # the demo decodes with chars only
stage_done

stage_start
./run.sh --stage 1 --stop-stage 1 --world-size "$world_size" --train-config "$pretrain_config" \
  --exp-dir "$pre" ${pretrain_overrides[@]+"${pretrain_overrides[@]}"}
stage_done

finetune_and_decode() {  # finetune_and_decode EXP_DIR INIT
  ./run.sh --stage 2 --stop-stage 3 --world-size "$world_size" --train-config "$finetune_config" \
    --init "$2" --exp-dir "$1" --decode-opts "--lm-scales $lm_scales" \
    ${finetune_overrides[@]+"${finetune_overrides[@]}"}
}

if [ "$side_by_side" = true ]; then
  stage_start
  threads=$(( $(nproc) / 2 )); [ "$threads" -ge 1 ] || threads=1
  OMP_NUM_THREADS=$threads side_by_side_start "pretrained" "$ft_pre/demo.log" \
    finetune_and_decode "$ft_pre" "$pre"
  OMP_NUM_THREADS=$threads side_by_side_start "from scratch" "$ft_scratch/demo.log" \
    finetune_and_decode "$ft_scratch" scratch
  if [ "$size" = tiny ]; then interval=10; else interval=60; fi
  side_by_side_wait "$interval" || { log "a fine-tuning failed (see above); rerun to resume"; exit 1; }
  stage_done
else
  stage_start
  finetune_and_decode "$ft_pre" "$pre"
  stage_done
  stage_start
  finetune_and_decode "$ft_scratch" scratch
  stage_done
fi

exps=("$ft_pre" "$ft_scratch")
if [ -n "$vanilla_config" ]; then
  stage_start
  # as many updates as fit in the hourglass pretraining's wall time at vanilla's measured speed
  hourglass_updates=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['updates'])" \
    "$pre/train_info.json")
  updates=$(python -m hourglass_w2v2.bin.equal_time --reference "$pretrain_config" \
    --reference-updates "$hourglass_updates" --config "$vanilla_config" --exp-dir "$vanilla.timing")
  log "vanilla tiny: $updates updates take the hourglass pretraining's wall time here"
  ./run.sh --stage 1 --stop-stage 1 --world-size "$world_size" --train-config "$vanilla_config" \
    --exp-dir "$vanilla" "trainer.max_updates=$updates"
  finetune_and_decode "$ft_vanilla" "$vanilla"
  exps+=("$ft_vanilla")
  stage_done
fi

python -m hourglass_w2v2.bin.results "${exps[@]}" --baseline "$ft_scratch" --verdict \
  --out "$results"
log "demo finished in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s;" \
  "table in $PWD/$results"
if [ "$size" = tiny ]; then
  log "This was the pipeline check: every stage ran and fed the next. The tiny corpus and a" \
    "few dozen updates say nothing about the method; 'make demo' compares the pretrained model" \
    "with the from-scratch baseline, 'make demo-large' makes that comparison with a longer run."
else
  log "$(tail -n 1 "$results")"
fi
