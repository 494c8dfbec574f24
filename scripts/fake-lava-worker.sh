#!/bin/sh
# A stand-in lava-worker for the demo and the tests. It runs until told to stop and, when
# FAKE_RECORD_DIR is set (through the realm's env), records what it was started with:
# argv, environment (NUL-separated, exact), uid/gid/groups, cwd, parent pid, signals received.
#   SIGHUP/SIGINT: finish "in-flight jobs" for FAKE_DRAIN_SECONDS (default 0), then exit 0
#   SIGTERM: exit 0 at once (unless FAKE_IGNORE_TERM=1)
#   FAKE_NODISPATCH=PATH: note "nodispatch" before the signal when PATH exists then
record=""
if [ -n "$FAKE_RECORD_DIR" ]; then
  record="$FAKE_RECORD_DIR/$(id -un)-$$"
  mkdir -p "$record"
  for arg in "$@"; do printf '%s\n' "$arg"; done > "$record/argv"
  cat /proc/$$/environ > "$record/environ"
  printf '%s %s %s\n' "$(id -u)" "$(id -g)" "$(id -G)" > "$record/ids"
  pwd > "$record/cwd"
  echo "$0" > "$record/exe"
  echo "$PPID" > "$record/ppid"
  : > "$record/signals"
fi
note() { [ -n "$record" ] && echo "$1" >> "$record/signals"; }
drain() {
  # FAKE_NODISPATCH: a path whose presence at the signal is noted first (the drain's order).
  if [ -n "$FAKE_NODISPATCH" ] && [ -e "$FAKE_NODISPATCH" ]; then note nodispatch; fi
  note "$1"
  echo "lava-worker: $1: finishing in-flight jobs"
  # In the background, so a signal's trap runs while the jobs "finish".
  sleep "${FAKE_DRAIN_SECONDS:-0}" &
  jobs=$!
  while kill -0 "$jobs" 2>/dev/null; do wait "$jobs"; done
  exit 0
}
trap 'drain HUP' HUP
trap 'drain INT' INT
if [ "${FAKE_IGNORE_TERM:-0}" = 1 ]; then
  trap 'note TERM' TERM
else
  trap 'note TERM; exit 0' TERM
fi
# FAKE_NOISE=N: N lines of output first (to fill pipes and log targets).
i=0
while [ "$i" -lt "${FAKE_NOISE:-0}" ]; do
  echo "lava-worker noise line $i: the quick brown fox jumps over the lazy dog, again and again and again"
  i=$((i + 1))
done
# FAKE_FORK_JOB=N: start a long "job" in the background (its pid in $record/job), exit 3 after N s.
if [ -n "$FAKE_FORK_JOB" ]; then
  sleep 300 &
  [ -n "$record" ] && echo "$!" > "$record/job"
  sleep "$FAKE_FORK_JOB"
  exit 3
fi
echo "lava-worker started: $*"
while :; do sleep 0.2; done
