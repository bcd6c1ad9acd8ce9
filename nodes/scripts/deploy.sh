# Install the worker release copied to $base/releases/$release.tar.gz (unless already installed) and
# make it the current one. Exit 3 with a message when the machine lacks what the worker needs.
set -eu
base=$1 release=$2
release_dir=$base/releases/$release
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "the worker needs Python 3.11 or newer as python3; this machine has: $(python3 --version 2>&1)" >&2
  exit 3
fi
if [ ! -e "$release_dir/.ready" ]; then
  # A venv cannot be moved once made: build it in place; .ready marks a complete release.
  rm -rf "$release_dir"
  mkdir -p "$release_dir"
  tar -xzf "$release_dir.tar.gz" -C "$release_dir"
  if ! python3 -m venv "$release_dir/venv" >/dev/null 2>&1; then
    echo "python3 -m venv failed: install Python's venv module (Debian/Ubuntu: apt install python3-venv)" >&2
    exit 3
  fi
  # Wheels shipped with the release: no index, and no pip settings of the machine's, are needed.
  PIP_CONFIG_FILE=/dev/null "$release_dir/venv/bin/pip" install --quiet --disable-pip-version-check \
    --no-index --find-links "$release_dir/wheels" -r "$release_dir/worker/requirements.txt"
  touch "$release_dir/.ready"
fi
rm -f "$release_dir.tar.gz"
previous=$(readlink "$base/current" 2>/dev/null || true)
ln -sfn "releases/$release" "$base/current.new"
mv -T "$base/current.new" "$base/current"
# Keep this release and the one before it; older ones only take space.
for old in "$base"/releases/*; do
  case "$old" in
    "$release_dir"|"$base/$previous"|*.tar.gz) ;;
    *) rm -rf "$old" ;;
  esac
done
