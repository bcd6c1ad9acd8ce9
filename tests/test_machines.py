"""The simulated test machines behave like real machines over SSH, and the faulty addresses fail as promised."""

import io
import socket
import time
from pathlib import Path

import paramiko
import pytest


def connect(machine, *, host_key: str | None = None, **credentials) -> paramiko.SSHClient:
    """Logs in as the machine's user with only the credentials given (no agent, no keys of our own),
    trusting only `host_key` ("type base64"; by default the machine's current host key)."""
    client = paramiko.SSHClient()  # rejects a host key it does not know
    pinned = f"[{machine.host}]:{machine.port} {host_key or machine.host_key_line()}"
    entry = paramiko.hostkeys.HostKeyEntry.from_line(pinned)
    client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
    username = credentials.pop("username", machine.username)
    if not credentials:
        credentials = {"password": machine.password}
    client.connect(
        machine.host, machine.port, username=username, timeout=5, look_for_keys=False, allow_agent=False, **credentials
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    return output.strip()


def test_each_machine_lets_its_own_user_in_by_password(machines):
    first, second = machines[0], machines[1]
    assert (first.host, first.username) != (second.host, second.username)
    for machine in (first, second):
        with connect(machine) as client:
            assert run(client, "whoami") == machine.username


def test_a_machine_lets_its_user_in_by_private_key(machines):
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(machines[0].private_key))
    with connect(machines[0], pkey=key) as client:
        assert run(client, "whoami") == machines[0].username


def test_a_wrong_password_is_refused(machines):
    with pytest.raises(paramiko.AuthenticationException):
        connect(machines[0], password="not-the-password")


def test_a_machine_lets_in_no_other_machines_user(machines):
    with pytest.raises(paramiko.AuthenticationException):
        connect(machines[0], username=machines[1].username, password=machines[1].password)


def test_homes_are_private_to_their_user(machines):
    with connect(machines[0]) as client:
        assert run(client, "stat -c %a ~") == "700"
        _, stdout, _ = client.exec_command(f"ls {machines[1].home}")
        assert stdout.channel.recv_exit_status() != 0


def test_sftp_uploads_a_file_the_user_owns(machines, tmp_path):
    local = tmp_path / "payload.txt"
    local.write_text("hello machine\n")
    with connect(machines[1]) as client:
        with client.open_sftp() as sftp:
            sftp.put(str(local), "payload.txt")
        assert run(client, "cat payload.txt") == "hello machine"
        assert run(client, "stat -c %U payload.txt") == machines[1].username


def test_the_system_python_makes_a_venv_in_the_users_home(machines):
    with connect(machines[0]) as client:
        run(client, "/usr/bin/python3 -m venv ~/venv")
        assert run(client, "~/venv/bin/python -c 'import sys; print(sys.prefix)'") == f"{machines[0].home}/venv"


def test_a_rotated_host_key_differs_and_trips_a_client_that_pinned_the_old_one(fresh_machine):
    old_key = fresh_machine.host_key_line()
    with connect(fresh_machine, host_key=old_key) as client:
        assert run(client, "whoami") == fresh_machine.username

    fresh_machine.rotate_host_key()

    assert fresh_machine.host_key_line() != old_key
    with pytest.raises(paramiko.BadHostKeyException):
        connect(fresh_machine, host_key=old_key)
    with connect(fresh_machine) as client:  # same address, new key
        assert run(client, "whoami") == fresh_machine.username


def test_a_stopped_sshd_refuses_connections_until_started_again(fresh_machine):
    fresh_machine.stop_sshd()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(fresh_machine)

    fresh_machine.start_sshd()
    with connect(fresh_machine) as client:
        assert run(client, "whoami") == fresh_machine.username


def test_killing_the_users_processes_ends_its_background_workers(fresh_machine):
    with connect(fresh_machine) as client:
        worker_pid = run(client, "nohup sleep 600 >/dev/null 2>&1 & echo $!")
    assert Path(f"/proc/{worker_pid}").exists()

    fresh_machine.kill_user_processes()

    assert not Path(f"/proc/{worker_pid}").exists()  # reaped too, so a `kill -0` check sees it gone
    with connect(fresh_machine) as client:
        assert run(client, "whoami") == fresh_machine.username


def test_a_refused_address_refuses_at_once(machines):
    host, port = machines.refused_address()
    started = time.monotonic()
    with pytest.raises((ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
        paramiko.SSHClient().connect(host, port, username="nobody", password="x", timeout=5)
    assert time.monotonic() - started < 1


def test_a_silent_address_lets_connect_time_out(machines):
    address = machines.silent_address()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection(address, timeout=0.5)
    with pytest.raises(TimeoutError):
        paramiko.SSHClient().connect(*address, username="nobody", password="x", timeout=0.5)
    assert 1 <= time.monotonic() - started < 2


def test_a_mute_address_makes_ssh_give_up_waiting_for_the_banner(machines):
    host, port = machines.mute_address()
    started = time.monotonic()
    with pytest.raises(paramiko.SSHException, match="banner"):
        paramiko.SSHClient().connect(host, port, username="nobody", password="x", timeout=5, banner_timeout=0.5)
    assert time.monotonic() - started < 2
