#!/bin/sh
# Start sshd, install the demo product and pytest for this node, write its manifest, then run the worker.
set -eu
: "${TESTHUB_NODE:?set TESTHUB_NODE to the node's name}"
root="/opt/testhub/$TESTHUB_NODE"
mkdir -p "$root/products" "$root/tools/pytest-8"
rm -rf "$root/products/demo-calculator-1.0"
cp -r /opt/testhub-demo/calculator "$root/products/demo-calculator-1.0"
printf '#!/bin/sh\nexec python -m pytest "$@"\n' > "$root/tools/pytest-8/pytest"
chmod +x "$root/tools/pytest-8/pytest"
cat > "$root/manifest.json" <<JSON
{"installs": [{"product": "demo-calculator", "version": "1.0", "path": "$root/products/demo-calculator-1.0",
  "tools": [{"tool": "pytest", "version": "8", "path": "$root/tools/pytest-8"}]}]}
JSON
ssh-keygen -A >/dev/null
/usr/sbin/sshd
exec python -m worker --node "$TESTHUB_NODE" --manifest "$root/manifest.json" --workdir "$root/work"
