#!/usr/bin/env bash
# Parse command-line options into shell variables, with Kaldi's semantics.
#
# Source it after setting defaults:   stage=0; stop_stage=100; . utils/parse_options.sh
#   --stop-stage 3  or  --stop-stage=3   sets stop_stage=3 (dashes become underscores);
#   an option whose variable is not defined beforehand fails with a message (typos don't pass);
#   a variable whose default is true/false only accepts true/false;
#   stage and stop_stage (when the script defines them) must be integers, e.g. -1, 0, 12;
#   --config FILE sources FILE first (lines like stage=2);
#   --help / -h prints $help_message (or, when unset, the script's leading comment) and exits 0.
# Parsing stops at the first argument not starting with --; the rest stays in "$@".

__script=${0##*/}

__print_help() {
  if [ -n "${help_message:-}" ]; then
    echo -e "$help_message"
  else
    # The script's leading comment block, without the shebang.
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
  fi
}

while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      __print_help
      exit 0
      ;;
    --*=*)
      __name=${1%%=*}; __value=${1#*=}; shift
      ;;
    --*)
      __name=$1
      if [ $# -lt 2 ]; then
        echo "$__script: option $__name needs a value" >&2
        exit 1
      fi
      __value=$2; shift 2
      ;;
    *)
      break
      ;;
  esac
  __var=$(echo "${__name#--}" | tr '-' '_')
  if [ "$__var" = config ]; then
    if [ ! -f "$__value" ]; then
      echo "$__script: config file $__value not found" >&2
      exit 1
    fi
    # shellcheck disable=SC1090
    . "$__value"
    continue
  fi
  if ! [[ $__var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__var+set}" ]; then
    echo "$__script: invalid option $__name (no variable '$__var' in the script; see --help)" >&2
    exit 1
  fi
  __old=${!__var}
  if { [ "$__old" = true ] || [ "$__old" = false ]; } && [ "$__value" != true ] && [ "$__value" != false ]; then
    echo "$__script: option $__name expects true or false, got '$__value'" >&2
    exit 1
  fi
  printf -v "$__var" '%s' "$__value"
done

# `[ $stage -le 1 ]` on "abc" or "1.5" is only a test error, which set -e ignores: every stage
# would be skipped and the script would exit 0 having done nothing.
for __var in stage stop_stage; do
  if [ -n "${!__var+set}" ] && ! [[ ${!__var} =~ ^-?[0-9]+$ ]]; then
    echo "$__script: --${__var//_/-} must be an integer, got '${!__var}'" \
      "(stages are numbered 0, 1, 2, ...; see --help)" >&2
    exit 1
  fi
done

unset __name __value __var __old
true
