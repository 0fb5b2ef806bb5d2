#!/usr/bin/env bash
# `log MESSAGE...` prints "YYYY-mm-dd HH:MM:SS (script:line:function) MESSAGE" to stderr.
# Source it from recipes:   . utils/log.sh

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}
