#!/bin/sh
# A demo test machine: an SSH server and a login for TestHub, nothing else. The control plane does the rest
# over SSH (seed_demo --machine ... queues it): it checks the machine, installs the demo product and pytest,
# and deploys the worker, which signs in to Redis as the machine's own broker user.
set -eu
case "${TESTHUB_DEMO_MACHINE_PASSWORD:-}" in
  "" | *CHANGE-ME*)
    echo "TESTHUB_DEMO_MACHINE_PASSWORD is empty or still the example's placeholder: set it in testhub.env" >&2
    exit 1 ;;
esac
id testhub >/dev/null 2>&1 || useradd --create-home --shell /bin/sh testhub
echo "testhub:$TESTHUB_DEMO_MACHINE_PASSWORD" | chpasswd
mkdir -p /opt/testhub && chown testhub /opt/testhub
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e
