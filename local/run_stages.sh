# The stages of run.sh, shared by the recipes: each recipe's run.sh documents them, sets
#   corpus, pretrain_config, finetune_config (and optionally world_size)
# and sources this file with its arguments: `. ./local/run_stages.sh "$@"`.
# shellcheck shell=bash
: "${corpus:?run_stages.sh: set corpus first}" "${pretrain_config:?}" "${finetune_config:?}"

stage=1
stop_stage=4
exp_dir=exp/pretrain
config=                     # default: $pretrain_config (stage 1), $finetune_config (stage 2)
world_size=${world_size:-1}
torchrun_opts=
init=                       # stage 2: checkpoint, exp dir, or "scratch"
avg=0                       # stage 2: average the last N checkpoints into averaged.pt
lang_dir=data/lang_char
methods="ctc-greedy 1best"
graph=HLG                   # one or more of H HL HLG
test_sets="test-clean test-other"
decode_opts=                # more decode options, e.g. "--beam 20 --lm-scales 0.6 0.8"
results_out=exp/results.md

help_message="$(sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0")
Options: --stage --stop-stage --exp-dir --config --world-size --torchrun-opts --init --avg
         --lang-dir --methods --graph --test-sets --decode-opts --results-out"

# utils/parse_options.sh sources `--config FILE` as shell (Kaldi's convention); here --config
# is the YAML experiment config, so take it out first.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --config=*) config=${1#*=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- ${args[@]+"${args[@]}"}
. ./utils/parse_options.sh
. ./utils/log.sh
overrides=("$@")

# `[ "$avg" -gt 0 ]` on a non-number fails quietly under set -e; check the counts up front.
for opt in avg world_size; do
  if ! [[ ${!opt} =~ ^[0-9]+$ ]]; then
    echo "${0##*/}: --${opt//_/-} must be a whole number, got '${!opt}'" >&2
    exit 1
  fi
done
if [ "$world_size" -lt 1 ]; then
  echo "${0##*/}: --world-size must be at least 1, got '$world_size'" >&2
  exit 1
fi

manifests=data/manifests
torchrun_cmd() {
  # shellcheck disable=SC2086
  python -m torch.distributed.run --nproc-per-node "$world_size" $torchrun_opts "$@"
}

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  cfg=${config:-$pretrain_config}
  log "Stage 1: pretraining $cfg in $exp_dir on $world_size process(es)"
  torchrun_cmd -m hourglass_w2v2.bin.pretrain --config "$cfg" --exp-dir "$exp_dir" \
    data.manifest_dir=$manifests data.corpus=$corpus ${overrides[@]+"${overrides[@]}"}
  log "Stage 1: done; tensorboard --logdir $exp_dir/tensorboard"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  cfg=${config:-$finetune_config}
  if [ -z "$init" ]; then
    log "Stage 2 needs --init (a checkpoint, a pretraining exp dir, or scratch)"; exit 1
  elif [ "$init" = scratch ]; then
    init_opt=(--init-from-scratch)
  elif [ -d "$init" ]; then
    ckpt=$(ls "$init"/checkpoints/ckpt-*.pt 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)
    [ -n "$ckpt" ] || { log "no ckpt-*.pt in $init/checkpoints"; exit 1; }
    init_opt=(--init "$ckpt")
  else
    init_opt=(--init "$init")
  fi
  avg_opt=(); [ "$avg" -gt 0 ] && avg_opt=(--avg "$avg")
  log "Stage 2: CTC fine-tuning $cfg in $exp_dir (${init_opt[*]})"
  torchrun_cmd -m hourglass_w2v2.bin.finetune --config "$cfg" --exp-dir "$exp_dir" \
    "${init_opt[@]}" ${avg_opt[@]+"${avg_opt[@]}"} data.manifest_dir=$manifests \
    data.corpus=$corpus ctc.lang_dir=$lang_dir ${overrides[@]+"${overrides[@]}"}
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: decoding $test_sets of $exp_dir with $methods (graph $graph)"
  # shellcheck disable=SC2086
  python -m hourglass_w2v2.bin.decode --exp-dir "$exp_dir" --lang-dir "$lang_dir" \
    --method $methods --graph $graph --test-sets $test_sets \
    --manifest-dir $manifests --corpus $corpus $decode_opts
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: results of exp/* -> $results_out"
  python -m hourglass_w2v2.bin.results exp/*/ --out "$results_out" --csv "${results_out%.md}.csv"
fi
