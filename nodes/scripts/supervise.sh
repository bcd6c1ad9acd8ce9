#!/bin/sh
# Keeps the TestHub worker running on a machine where systemd does not (started by TestHub's deploy).
# A worker that exits is started again from the release `current` points to: TERM to the worker (what a
# redeploy sends) makes it finish its running cases first. TERM to this script stops both for good.
cd "$(dirname "$0")" || exit 1
echo $$ > supervisor.pid
child=""
stopping=""
trap '' HUP
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
while [ -z "$stopping" ]; do
  # Keep one old log beside the current one, so a long-lived machine's disk does not fill up.
  if [ -f worker.log ] && [ "$(wc -c < worker.log)" -gt 10000000 ]; then mv worker.log worker.log.1; fi
  (set -a; . ./worker.env; set +a; cd current && exec venv/bin/python -m worker) >>worker.log 2>&1 &
  child=$!
  echo "$child" > worker.pid
  while kill -0 "$child" 2>/dev/null; do wait "$child"; done
  [ -n "$stopping" ] || sleep 2
done
rm -f supervisor.pid worker.pid
