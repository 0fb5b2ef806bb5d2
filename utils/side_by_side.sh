#!/usr/bin/env bash
# Run a few commands at the same time, each logging to its own file, and watch them.
# Source it from recipes (after utils/log.sh):   . utils/side_by_side.sh
#
#   side_by_side_start NAME LOG CMD...   start CMD in the background with stdout+stderr in LOG
#   side_by_side_wait SECONDS            every SECONDS log one line per running command (the
#                                        last line of its LOG), wait for all; a command that
#                                        failed gets the end of its LOG printed; returns 1 then
#
# Each command gets its own process group, so an interrupt (Ctrl-C, kill) of the caller stops
# the commands and everything they started (trainers, decoders) instead of leaving them running.

_sbs_names=()
_sbs_pids=()
_sbs_logs=()

_sbs_stop() {
  local pid
  for pid in "${_sbs_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
}

side_by_side_start() {  # side_by_side_start NAME LOG CMD...
  local name=$1 logfile=$2
  shift 2
  mkdir -p "$(dirname "$logfile")"
  if [ ${#_sbs_pids[@]} -eq 0 ]; then trap '_sbs_stop; exit 130' INT TERM; fi
  set -m  # job control on: the command below becomes the leader of its own process group
  "$@" >"$logfile" 2>&1 &
  _sbs_pids+=($!)
  set +m
  _sbs_names+=("$name")
  _sbs_logs+=("$logfile")
  log "$name: started, log in $logfile"
}

_sbs_last_line() {  # the last non-empty line of a log, without the logging prefix
  tail -c 4000 "$1" 2>/dev/null | tr '\r' '\n' | sed '/^[[:space:]]*$/d' | tail -n 1 \
    | sed -E 's/^[0-9-]+ [0-9:,]+ [A-Z]+ \[[^]]*\] (\(rank [0-9]+\) )?//' | cut -c 1-110
}

side_by_side_wait() {  # side_by_side_wait SECONDS
  local interval=$1 i running failed=0 rc last_report=$SECONDS
  local -a done_=()
  for i in "${!_sbs_pids[@]}"; do done_[i]=0; done
  while :; do
    running=0
    for i in "${!_sbs_pids[@]}"; do
      [ "${done_[i]}" = 0 ] || continue
      if kill -0 "${_sbs_pids[i]}" 2>/dev/null; then
        running=$((running + 1))
        continue
      fi
      rc=0
      wait "${_sbs_pids[i]}" || rc=$?
      done_[i]=1
      if [ "$rc" = 0 ]; then
        log "${_sbs_names[i]}: finished"
      else
        failed=1
        log "${_sbs_names[i]}: FAILED (exit status $rc); the end of ${_sbs_logs[i]}:"
        tail -n 30 "${_sbs_logs[i]}" | tr '\r' '\n' | tail -n 30 >&2
      fi
    done
    [ "$running" -gt 0 ] || break
    sleep 2 &
    wait $! || true
    [ $((SECONDS - last_report)) -ge "$interval" ] || continue
    last_report=$SECONDS
    for i in "${!_sbs_pids[@]}"; do
      [ "${done_[i]}" = 0 ] && kill -0 "${_sbs_pids[i]}" 2>/dev/null || continue
      log "${_sbs_names[i]}: $(_sbs_last_line "${_sbs_logs[i]}")"
    done
  done
  _sbs_names=()
  _sbs_pids=()
  _sbs_logs=()
  trap - INT TERM
  return "$failed"
}
