#!/usr/bin/env bash
# Training, decoding and results of the LibriSpeech recipe (run ./prepare.sh first).
#
#   ./run.sh --stage 1 --stop-stage 1 --exp-dir exp/pretrain \
#            --train-config conf/pretrain_base_hourglass.yaml
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min \
#            --train-config conf/finetune_base_10min.yaml --init exp/pretrain [--avg 3]
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min_scratch --init scratch
#   ./run.sh --stage 4 --stop-stage 4 [--results-opts "--strict"]
#   ./run.sh --stage 1 --stop-stage 1 --nnodes 4 --node-rank R --rdzv-endpoint HOST0:29400 \
#            --max-restarts 3     (on each of 4 machines; SLURM: sbatch utils/slurm_train.sh)
#
# ./run.sh --help lists the stages and every option with its default (utils/run_functions.sh).
set -euo pipefail

corpus=librispeech
pretrain_config=conf/pretrain_base_hourglass.yaml     # --train-config of stage 1 by default
finetune_config=conf/finetune_base_10min.yaml         # --train-config of stage 2 by default
world_size=8                                          # processes (one per GPU) a node

. ./utils/log.sh
. ./utils/run_functions.sh
run_sh_options "$@"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  config=${train_config:-$pretrain_config}
  log "Stage 1: pretraining $config in $exp_dir on $nnodes node(s) x $world_size process(es)"
  train_stage hourglass_w2v2.bin.pretrain "$config" "${train_opts[@]}"
  log "Stage 1: done; tensorboard --logdir $exp_dir/tensorboard"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  config=${train_config:-$finetune_config}
  init_opt=()
  set_init_options init_opt "$init" "$avg" || exit 1
  log "Stage 2: CTC fine-tuning $config in $exp_dir (${init_opt[*]})"
  train_stage hourglass_w2v2.bin.finetune "$config" "${init_opt[@]}" "${train_opts[@]}" \
    ctc.lang_dir="$lang_dir"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: decoding $test_sets of $exp_dir with $methods (graph $graph) $decode_opts"
  decode_stage
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: results of exp/* -> $results_out"
  results_stage
fi
