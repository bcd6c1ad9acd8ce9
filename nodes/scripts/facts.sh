# What TestHub records about a machine, one key=value per line; then "missing=<path>" for each
# installed folder (the arguments after the install root) that is not there. POSIX sh only.
root=$1
shift
os=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null) || os=$(uname -s)
echo "os=$os"
echo "kernel=$(uname -sr)"
echo "arch=$(uname -m)"
echo "hostname=$(uname -n)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
mkdir -p "$root" 2>/dev/null
if [ -d "$root" ] && [ -w "$root" ]; then echo "install_root_writable=yes"; else echo "install_root_writable=no"; fi
dir=$root
while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
echo "disk_free_kb=$(df -Pk "$dir" | awk 'NR==2 {print $4}')"
echo "python=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
if python3 -c 'import ensurepip, venv' 2>/dev/null; then echo "python_venv=yes"; else echo "python_venv=no"; fi
if [ -d /run/systemd/system ]; then echo "systemd=yes"; else echo "systemd=no"; fi
echo "worker_release=$(basename "$(readlink "$root/worker/current" 2>/dev/null)" 2>/dev/null)"
for path in "$@"; do
  [ -d "$path" ] || echo "missing=$path"
done
