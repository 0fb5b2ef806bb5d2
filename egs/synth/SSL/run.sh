#!/usr/bin/env bash
# Training, decoding and results of the synth recipe (run ./prepare.sh first).
#
#   ./run.sh --stage 1 --stop-stage 1 --exp-dir exp/pretrain \
#            --train-config conf/pretrain_tiny_hourglass.yaml
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min \
#            --train-config conf/finetune_tiny_10min.yaml --init exp/pretrain [--avg 3]
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min_scratch --init scratch
#   ./run.sh --stage 4 --stop-stage 4 [--results-opts "--strict"]
#
#   stage 1: contrastive pretraining (torchrun; resumes from the newest checkpoint in --exp-dir)
#   stage 2: CTC fine-tuning; --init is a pretraining checkpoint, an exp dir (its newest
#            checkpoint), a fairseq/HF/torchaudio checkpoint, or "scratch" (baseline)
#   stage 3: decoding every test set with every method in --methods
#   stage 4: the results table of every experiment under exp/
# --train-config is the YAML experiment config of stage 1 or 2 (default: the stage's conf file);
# trailing key=value arguments override it (e.g. trainer.max_updates=50). --config FILE, as in
# every Kaldi script, sources FILE as shell lines setting these options.
# --restart-from-scratch true: when --exp-dir holds checkpoints of which none loads, set them
# aside as *.corrupt and train from update 0 (by default training refuses to start over).
# --decode-opts passes more bin.decode options, e.g. "--cuts mine=data/mine_cuts.jsonl.gz"
# (another test set, here named mine), "--skip-bad" (leave out unreadable audio, listed in
# skipped-<test>.txt), "--beam 20 --lm-scales 0.6 0.8"; --results-opts passes bin.results
# options, e.g. "--strict" (fail on an unreadable results file) or "--baseline exp/ft_scratch".
# Multi-node: --torchrun-opts "--nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint H:P".
set -euo pipefail

stage=1
stop_stage=4
exp_dir=exp/pretrain
train_config=               # stage 1 or 2's YAML config (default: see below)
world_size=1                # processes (one per GPU) of stages 1-2
torchrun_opts=
restart_from_scratch=false  # stages 1-2: start over when no checkpoint in --exp-dir loads
init=                       # stage 2: checkpoint, exp dir, or "scratch"
avg=0                       # stage 2: average the last N checkpoints into averaged.pt
lang_dir=data/lang_char
methods="ctc-greedy 1best"
graph=HLG                   # one or more of H HL HLG
test_sets="test-clean test-other"
decode_opts=                # more bin.decode options: --cuts NAME=PATH, --skip-bad, --beam, ...
results_out=exp/results.md
results_opts=               # more bin.results options: --strict, --baseline EXP

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --stage --stop-stage --exp-dir --train-config --world-size --torchrun-opts
         --restart-from-scratch --init --avg --lang-dir --methods --graph --test-sets
         --decode-opts --results-out --results-opts"

. ./utils/log.sh
. ./utils/run_functions.sh
reject_yaml_config "$@" || exit 1
. ./utils/parse_options.sh
overrides=("$@")
check_counts avg:0 world_size:1 || exit 1

corpus=synth
pretrain_config=conf/pretrain_tiny_hourglass.yaml     # --train-config of stage 1 by default
finetune_config=conf/finetune_tiny_10min.yaml         # --train-config of stage 2 by default
manifests=data/manifests
# what both training stages pass: the restart policy, then the data prepare.sh made
train_opts=()
if [ "$restart_from_scratch" = true ]; then train_opts=(--restart-from-scratch); fi
train_opts+=("data.manifest_dir=$manifests" "data.corpus=$corpus")

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  config=${train_config:-$pretrain_config}
  log "Stage 1: pretraining $config in $exp_dir on $world_size process(es)"
  # shellcheck disable=SC2086  # torchrun_opts holds several options
  python -m torch.distributed.run --nproc-per-node "$world_size" $torchrun_opts \
    -m hourglass_w2v2.bin.pretrain --config "$config" --exp-dir "$exp_dir" \
    "${train_opts[@]}" ${overrides[@]+"${overrides[@]}"}
  log "Stage 1: done; tensorboard --logdir $exp_dir/tensorboard"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  config=${train_config:-$finetune_config}
  set_init_options init_opt "$init" || exit 1
  if [ "$avg" -gt 0 ]; then init_opt+=(--avg "$avg"); fi
  log "Stage 2: CTC fine-tuning $config in $exp_dir (${init_opt[*]})"
  # shellcheck disable=SC2086
  python -m torch.distributed.run --nproc-per-node "$world_size" $torchrun_opts \
    -m hourglass_w2v2.bin.finetune --config "$config" --exp-dir "$exp_dir" "${init_opt[@]}" \
    "${train_opts[@]}" ctc.lang_dir="$lang_dir" ${overrides[@]+"${overrides[@]}"}
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: decoding $test_sets of $exp_dir with $methods (graph $graph) $decode_opts"
  # shellcheck disable=SC2086  # each of these holds a list
  python -m hourglass_w2v2.bin.decode --exp-dir "$exp_dir" --lang-dir "$lang_dir" \
    --method $methods --graph $graph --test-sets $test_sets \
    --manifest-dir $manifests --corpus $corpus $decode_opts
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: results of exp/* -> $results_out"
  exps=(exp/*/)
  if [ ! -d "${exps[0]}" ]; then
    log "Error: no experiment directory under exp/ to tabulate; run stages 1-3 first"; exit 1
  fi
  # shellcheck disable=SC2086
  python -m hourglass_w2v2.bin.results "${exps[@]}" --out "$results_out" \
    --csv "${results_out%.md}.csv" $results_opts
fi
