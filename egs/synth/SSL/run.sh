#!/usr/bin/env bash
# Training, decoding and results of the synth recipe (run ./prepare.sh first).
#
#   ./run.sh --stage 1 --stop-stage 1 --exp-dir exp/pretrain --config conf/pretrain_tiny_hourglass.yaml
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min --config conf/finetune_tiny_10min.yaml \
#            --init exp/pretrain [--avg 3]
#   ./run.sh --stage 2 --stop-stage 3 --exp-dir exp/ft_10min_scratch --init scratch
#   ./run.sh --stage 4 --stop-stage 4
#
#   stage 1: contrastive pretraining (torchrun; resumes from the newest checkpoint in --exp-dir)
#   stage 2: CTC fine-tuning; --init is a pretraining checkpoint, an exp dir (its newest
#            checkpoint), a fairseq/HF/torchaudio checkpoint, or "scratch" (baseline)
#   stage 3: decoding every test set with every method in --methods
#   stage 4: the results table of every experiment under exp/
# Trailing key=value arguments override the experiment config (e.g. trainer.max_updates=50).
# Multi-node: --torchrun-opts "--nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint H:P".
set -euo pipefail

corpus=synth
pretrain_config=conf/pretrain_tiny_hourglass.yaml      # stage 1 default
finetune_config=conf/finetune_tiny_10min.yaml         # stage 2 default
world_size=1
. ./local/run_stages.sh "$@"
