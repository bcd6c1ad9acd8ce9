# Stop the TestHub worker in $1 (systemd unit $2) for good and delete what TestHub put under the install
# root $3: the install folders given after it, the worker, its work folder and the manifest. POSIX sh.
set -eu
base=$1 unit_name=$2 root=$3
shift 3
as_root=""
if [ "$(id -u)" = 0 ]; then as_root="env"; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; fi
stopped="no worker was running"
if [ -n "$as_root" ] && [ -f "/etc/systemd/system/$unit_name.service" ]; then
  $as_root systemctl disable --now --quiet "$unit_name" 2>/dev/null || true
  $as_root rm -f "/etc/systemd/system/$unit_name.service"
  $as_root systemctl daemon-reload 2>/dev/null || true
  stopped="systemd unit $unit_name stopped and removed"
fi
if command -v crontab >/dev/null 2>&1; then
  (crontab -l 2>/dev/null | grep -v -F "# testhub-worker $base" || true) | crontab - 2>/dev/null || true
fi
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && grep -q "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null; }
wait_gone() { i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; }
# TERM to the supervisor stops its worker (a warm shutdown: it runs no case now) and then itself.
if alive "$base/supervisor.pid" supervise; then
  pid=$(cat "$base/supervisor.pid"); kill -TERM "$pid"; wait_gone "$pid"; stopped="supervised worker stopped"
fi
if alive "$base/worker.pid" worker; then
  pid=$(cat "$base/worker.pid"); kill -TERM "$pid"; wait_gone "$pid"; stopped="worker stopped"
fi
rm -rf -- "$@" "$base" "$root/work" "$root/.incoming" "$root/manifest.json"
echo "$stopped; $# install folder(s) and the worker's files deleted"
