# Shell functions the recipes' run.sh share; source it:   . ./utils/run_functions.sh
#
#   run_sh_options ARGS...          set run.sh's options from ARGS (defaults, --help, checks)
#   train_stage MODULE CONFIG ARGS...   stages 1-2: torchrun MODULE on this node's processes
#   decode_stage                    stage 3: decode --test-sets of --exp-dir with --methods
#   results_stage                   stage 4: the results table of exp/*/
#   reject_yaml_config ARGS...      fail when --config names a YAML file (see below)
#   check_counts NAME:LEAST...      fail unless each named variable is a whole number >= LEAST
#   check_nodes                     fail unless --node-rank and --rdzv-endpoint fit --nnodes
#   torchrun_launch_options ARRAY   set ARRAY to torchrun's rendezvous and restart options
#   set_init_options ARRAY INIT AVG set ARRAY to the fine-tuning trainer's init options
#   newest_checkpoint DIR           print DIR/ckpt-<N>.pt with the largest N; fail when none
# The stage functions read run.sh's option variables, which run_sh_options sets.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # the option variables are run.sh's

# The recipe sets corpus, pretrain_config, finetune_config and world_size before calling it;
# the trailing key=value arguments (config overrides) are left in the array `overrides`.
run_sh_options() {
  stage=1
  stop_stage=4
  exp_dir=exp/pretrain
  train_config=
  nnodes=1
  node_rank=0
  rdzv_endpoint=
  max_restarts=0
  torchrun_opts=
  restart_from_scratch=false
  allow_config_change=false
  init=
  avg=0
  lang_dir=data/lang_char
  methods="ctc-greedy 1best"
  graph=HLG
  test_sets="test-clean test-other"
  decode_opts=
  results_out=exp/results.md
  results_opts=
  help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
$(run_sh_help)"
  reject_yaml_config "$@" || exit 1
  . ./utils/parse_options.sh
  overrides=("$@")
  check_counts avg:0 world_size:1 nnodes:1 max_restarts:0 || exit 1
  check_nodes || exit 1
  manifests=data/manifests
  # what both training stages pass: the restart policy, then the data prepare.sh made
  train_opts=()
  if [ "$restart_from_scratch" = true ]; then train_opts=(--restart-from-scratch); fi
  if [ "$allow_config_change" = true ]; then train_opts+=(--allow-config-change); fi
  train_opts+=("data.manifest_dir=$manifests" "data.corpus=$corpus")
}

run_sh_help() {
  cat <<EOF
Stages:
  1  contrastive pretraining (torchrun; resumes from the newest checkpoint in --exp-dir)
  2  CTC fine-tuning; --init is a pretraining checkpoint, an exp dir (its newest checkpoint),
     a fairseq / torchaudio checkpoint, an HF model dir (config.json + weights), or
     "scratch" (baseline)
  3  decoding every test set with every method in --methods
  4  the results table of every experiment under exp/
Options (default):
  --stage N --stop-stage M   the stages to run ($stage, $stop_stage)
  --exp-dir DIR              the experiment directory of stages 1-3 ($exp_dir)
  --train-config FILE        the YAML experiment config of stage 1 or 2 (stage 1:
                             $pretrain_config, stage 2: $finetune_config);
                             trailing key=value arguments override it (e.g.
                             trainer.max_updates=50). --config FILE, as in every Kaldi script,
                             sources FILE as shell lines setting these options.
  --world-size N             stages 1-2: processes on this node, one per GPU ($world_size)
  --nnodes N                 stages 1-2: nodes (machines); run the same command on each ($nnodes)
  --node-rank R              this node's number, 0 .. N-1; node 0 hosts the rendezvous ($node_rank)
  --rdzv-endpoint HOST:PORT  with --nnodes > 1: node 0's address and a free port, where the
                             nodes meet (torchrun's c10d rendezvous)
  --max-restarts N           torchrun restarts all processes up to N times after one fails;
                             they resume from the newest checkpoint ($max_restarts)
  --torchrun-opts "..."      more torchrun options, e.g. "--rdzv-id \$SLURM_JOB_ID"
  --restart-from-scratch true  stages 1-2: when --exp-dir holds checkpoints of which none loads,
                             set them aside as *.corrupt and train from update 0 (by default
                             training refuses to start over) ($restart_from_scratch)
  --allow-config-change true  stages 1-2: go on from the checkpoint in --exp-dir even when it was
                             trained with another config (seed, model, data, optimizer,
                             schedule); by default training refuses, naming the keys
                             ($allow_config_change)
  --init INIT --avg N        stage 2: see above; --avg averages the last N checkpoints ($avg)
  --lang-dir DIR             units and graphs of stages 2-3 ($lang_dir)
  --methods "..."            stage 3: decoding methods ($methods)
  --graph G                  stage 3: one or more of H HL HLG ($graph)
  --test-sets "..."          stage 3: the test sets ($test_sets)
  --decode-opts "..."        more bin.decode options, e.g. "--cuts mine=data/mine_cuts.jsonl.gz"
                             (another test set, here named mine), "--skip-bad" (leave out
                             unreadable audio, listed in skipped-<test>.txt), "--beam 20
                             --lm-scales 0.6 0.8"
  --results-out FILE         stage 4: the table, markdown (and .csv beside it) ($results_out)
  --results-opts "..."       more bin.results options, e.g. "--strict" (fail on an unreadable
                             results file) or "--baseline exp/ft_scratch"
EOF
}

# train_stage MODULE CONFIG ARGS...: torchrun starts --world-size processes of
# `python -m MODULE --config CONFIG --exp-dir $exp_dir ARGS... OVERRIDES...` on this node,
# once the same command with --check-config has found the config, model and data in order (so
# that a typo is one line naming it, not a line lost above torchrun's traceback).
# Its rendezvous store is not shared with the processes: a shared one outlives them and can
# hang a restart on a dead process's address (pytorch/pytorch#135712).
train_stage() {
  local module=$1 config=$2 launch
  shift 2
  # --check-config first: ARGS may end in key=value overrides, and argparse takes the
  # positional overrides only as one run at the end
  python -m "$module" --check-config --config "$config" --exp-dir "$exp_dir" "$@" \
    ${overrides[@]+"${overrides[@]}"} || return 1
  torchrun_launch_options launch
  # shellcheck disable=SC2086  # torchrun_opts holds several options
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 python -m torch.distributed.run \
    --nproc-per-node "$world_size" "${launch[@]}" $torchrun_opts \
    -m "$module" --config "$config" --exp-dir "$exp_dir" "$@" ${overrides[@]+"${overrides[@]}"}
}

decode_stage() {
  # shellcheck disable=SC2086  # each of these holds a list
  python -m hourglass_w2v2.bin.decode --exp-dir "$exp_dir" --lang-dir "$lang_dir" \
    --method $methods --graph $graph --test-sets $test_sets \
    --manifest-dir $manifests --corpus $corpus $decode_opts
}

results_stage() {
  local exps=(exp/*/)
  if [ ! -d "${exps[0]}" ]; then
    log "Error: no experiment directory under exp/ to tabulate; run stages 1-3 first"
    return 1
  fi
  # shellcheck disable=SC2086
  python -m hourglass_w2v2.bin.results "${exps[@]}" --out "$results_out" \
    --csv "${results_out%.md}.csv" $results_opts
}

# utils/parse_options.sh sources `--config FILE` as shell (Kaldi's convention), so a YAML
# experiment config given there would run as commands; run.sh takes it as --train-config.
reject_yaml_config() {
  local prev="" arg value
  for arg in "$@"; do
    value=""
    case "$arg" in
      --config=*) value=${arg#--config=} ;;
      *) [ "$prev" = --config ] && value=$arg ;;
    esac
    prev=$arg
    case "$value" in
      *.yaml|*.yml)
        echo "${0##*/}: --config $value: --config sources a shell file of option defaults" \
          "(Kaldi's convention); give the YAML experiment config as --train-config $value" >&2
        return 1 ;;
    esac
  done
}

# `[ "$avg" -gt 0 ]` on a non-number is only a test error, which set -e ignores.
check_counts() {
  local spec name least
  for spec in "$@"; do
    name=${spec%%:*} least=${spec#*:}
    if ! [[ ${!name} =~ ^[0-9]+$ ]]; then
      echo "${0##*/}: --${name//_/-} must be a whole number, got '${!name}'" >&2
      return 1
    elif [ "${!name}" -lt "$least" ]; then
      echo "${0##*/}: --${name//_/-} must be at least $least, got ${!name}" >&2
      return 1
    fi
  done
}

# One node needs no endpoint: torchrun --standalone picks a free local port. Several need the
# same --rdzv-endpoint on every node, and distinct node ranks.
check_nodes() {
  if ! [[ $node_rank =~ ^[0-9]+$ ]] || [ "$node_rank" -ge "$nnodes" ]; then
    echo "${0##*/}: --node-rank must be a whole number below --nnodes ($nnodes), got" \
      "'$node_rank'" >&2
    return 1
  fi
  if [ "$nnodes" -gt 1 ] && ! [[ $rdzv_endpoint =~ ^[^:[:space:]]+:[0-9]+$ ]]; then
    echo "${0##*/}: --nnodes $nnodes needs --rdzv-endpoint HOST:PORT (node 0's address and a" \
      "free port, the same on every node), got '$rdzv_endpoint'" >&2
    return 1
  fi
  local launch='--(nnodes|node[-_]rank|rdzv[-_]endpoint|rdzv[-_]backend|standalone|max[-_]restarts)'
  if [[ " $torchrun_opts" =~ [[:space:]]$launch([=[:space:]]|$) ]]; then
    echo "${0##*/}: --torchrun-opts '$torchrun_opts': give --${BASH_REMATCH[1]} as run.sh's" \
      "own option (--nnodes, --node-rank, --rdzv-endpoint, --max-restarts), which set" \
      "torchrun's rendezvous" >&2
    return 1
  fi
  if [ "$nnodes" -eq 1 ] && [ -n "$rdzv_endpoint" ]; then
    echo "${0##*/}: --rdzv-endpoint $rdzv_endpoint is for several nodes; give --nnodes too" >&2
    return 1
  fi
}

# c10d rendezvous in both cases, the one torchrun can restart processes with; node 0 hosts its
# store, so no node has to guess from host names whether the endpoint is its own.
# shellcheck disable=SC2178  # opts names the caller's array
torchrun_launch_options() {
  local -n opts=$1
  if [ "$nnodes" -eq 1 ]; then
    opts=(--standalone)
  else
    local is_host=false
    [ "$node_rank" -eq 0 ] && is_host=true
    opts=(--nnodes "$nnodes" --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint"
          --rdzv-conf "is_host=$is_host")
  fi
  if [ "$max_restarts" -gt 0 ]; then opts+=(--max-restarts "$max_restarts"); fi
}

# INIT is "scratch" (--init-from-scratch), a checkpoint file, an HF transformers model dir
# (save_pretrained: config.json + weights, passed as it is), or an exp dir whose newest
# checkpoint is used (--init FILE); AVG > 0 adds --avg AVG.
# shellcheck disable=SC2178  # opts names the caller's array
set_init_options() {
  local -n opts=$1
  local init=$2 avg=$3 ckpt
  case "$init" in
    "")
      echo "${0##*/}: stage 2 needs --init (a checkpoint, a pretraining exp dir or scratch)" >&2
      return 1 ;;
    scratch) opts=(--init-from-scratch) ;;
    *)
      ckpt=$init
      if [ -d "$init" ] && [ ! -f "$init/config.json" ]; then
        ckpt=$(newest_checkpoint "$init/checkpoints") || return 1
      fi
      opts=(--init "$ckpt") ;;
  esac
  if [ "$avg" -gt 0 ]; then opts+=(--avg "$avg"); fi
}

# Compares the numbers parsed from the file names, so that neither a hyphen elsewhere in the
# path nor set-aside files (ckpt-N.pt.corrupt) can pick the wrong one.
newest_checkpoint() {
  local dir=$1 path step best="" best_step=-1
  for path in "$dir"/ckpt-*.pt; do
    step=${path##*/ckpt-}
    step=${step%.pt}
    [[ $step =~ ^[0-9]+$ ]] || continue
    if (( 10#$step > best_step )); then
      best=$path
      best_step=$(( 10#$step ))
    fi
  done
  if [ -z "$best" ]; then
    echo "${0##*/}: no checkpoint ckpt-<update>.pt in $dir" >&2
    return 1
  fi
  echo "$best"
}
