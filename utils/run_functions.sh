# Shell functions the recipes' run.sh share; source after utils/log.sh:   . ./utils/run_functions.sh
#
#   reject_yaml_config ARGS...      fail when --config names a YAML file (see below)
#   check_whole_numbers NAME...     fail unless each named variable holds 0, 1, 2, ...
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
check_whole_numbers() {
  local name
  for name in "$@"; do
    if ! [[ ${!name} =~ ^[0-9]+$ ]]; then
      echo "${0##*/}: --${name//_/-} must be a whole number, got '${!name}'" >&2
      return 1
    fi
  done
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
