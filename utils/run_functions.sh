# Shell functions the recipes' run.sh share; source it:   . ./utils/run_functions.sh
#
#   reject_yaml_config ARGS...      fail when --config names a YAML file (see below)
#   check_counts NAME:LEAST...      fail unless each named variable is a whole number >= LEAST
#   set_init_options ARRAY INIT     set ARRAY to the fine-tuning trainer's init options
#   newest_checkpoint DIR           print DIR/ckpt-<N>.pt with the largest N; fail when none
# shellcheck shell=bash

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

# INIT is "scratch" (--init-from-scratch), a checkpoint file, or an exp dir whose newest
# checkpoint is used (--init FILE).
# shellcheck disable=SC2034  # opts names the caller's array
set_init_options() {
  local -n opts=$1
  local init=$2 ckpt
  case "$init" in
    "")
      echo "${0##*/}: stage 2 needs --init (a checkpoint, a pretraining exp dir or scratch)" >&2
      return 1 ;;
    scratch) opts=(--init-from-scratch) ;;
    *)
      ckpt=$init
      if [ -d "$init" ]; then ckpt=$(newest_checkpoint "$init/checkpoints") || return 1; fi
      opts=(--init "$ckpt") ;;
  esac
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
