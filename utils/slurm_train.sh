#!/usr/bin/env bash
# Training stages of a recipe's run.sh on several SLURM nodes: one run.sh, hence one torchrun,
# per node, each starting one process per GPU; the nodes meet at a c10d rendezvous on the first
# node. When a process fails, torchrun restarts the processes of every node (up to
# --max-restarts times) and they resume from the newest checkpoint in --exp-dir.
#
# Submit from the recipe folder (egs/<recipe>/SSL), whose data/, conf/ and exp/ every node must
# see at the same path (a shared file system); the arguments go to run.sh, config overrides last:
#
#   sbatch --nodes 4 --gpus-per-node 8 utils/slurm_train.sh --stage 1 --stop-stage 1 \
#          --exp-dir exp/pretrain_base --train-config conf/pretrain_base_hourglass.yaml
#
# Environment: MAX_RESTARTS (default 3), RDZV_PORT (default 29400, free on the first node).
#SBATCH --job-name=hourglass-w2v2
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --output=slurm-%j.out
set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"
# sed reads every line: `head` would close the pipe early and, under pipefail, fail the job on SIGPIPE
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)
gpus=${SLURM_GPUS_ON_NODE:-1}

# one task per node; SLURM_NODEID (0 on the first node of the list) is read in each task
# shellcheck disable=SC2016  # expanded by the task's bash, not here
srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 \
  bash -c './run.sh --node-rank "$SLURM_NODEID" "$@"' run.sh \
  --world-size "$gpus" --nnodes "$SLURM_JOB_NUM_NODES" \
  --rdzv-endpoint "$head_node:${RDZV_PORT:-29400}" --max-restarts "${MAX_RESTARTS:-3}" \
  --torchrun-opts "--rdzv-id $SLURM_JOB_ID" "$@"
