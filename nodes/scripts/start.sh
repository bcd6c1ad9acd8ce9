# (Re)start the worker in $base: a systemd unit where systemd runs and we may install one, a supervised
# background process otherwise. A running worker gets TERM: it finishes its running cases, then the new
# release starts. Prints how it was done.
set -eu
base=$1 unit_name=$2 unit_text=$3
as_root=""
if [ "$(id -u)" = 0 ]; then as_root="env"; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; fi
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null && grep -q "$2" "/proc/$(cat "$1")/cmdline" 2>/dev/null; }
# The crontab line that starts the supervised worker after a reboot (install roots hold no spaces or '%').
reboot_entry="@reboot sh $base/supervise # testhub-worker $base"
other_crontab() { crontab -l 2>/dev/null | grep -v -F -x "$reboot_entry" || true; }
cd "$base"
if [ -d /run/systemd/system ] && [ -n "$as_root" ]; then
  # A worker supervised here before (no sudo then, say) stops warmly: one worker per node, under systemd.
  if running supervisor.pid supervise; then kill -TERM "$(cat supervisor.pid)"; fi
  if command -v crontab >/dev/null 2>&1; then other_crontab | crontab - 2>/dev/null || true; fi
  printf '%s\n' "$unit_text" | $as_root tee "/etc/systemd/system/$unit_name.service" >/dev/null
  $as_root systemctl daemon-reload
  $as_root systemctl enable --quiet "$unit_name"
  $as_root systemctl restart --no-block "$unit_name"
  echo "systemd unit $unit_name (re)started"
  exit 0
fi
if running supervisor.pid supervise; then
  if running worker.pid worker; then kill -TERM "$(cat worker.pid)"; fi
  how="supervised worker restarted"
else
  setsid sh ./supervise </dev/null >/dev/null 2>&1 &
  how="supervised worker started"
fi
# Back after a reboot where cron runs.
if command -v crontab >/dev/null 2>&1; then
  (other_crontab; echo "$reboot_entry") | crontab - 2>/dev/null && how="$how; @reboot entry in crontab"
fi
echo "$how"
