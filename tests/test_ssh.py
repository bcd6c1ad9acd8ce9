"""nodes/ssh.py against real sshd processes on loopback (tests/machines.py): logins, pinning, and every failure."""

import time

import pytest

from nodes import ssh
from nodes.models import SSHStatus

CONNECT_TIMEOUT = 2


def target_of(machine, **changes) -> ssh.Target:
    fields = {"host": machine.host, "port": machine.port, "username": machine.username, "password": machine.password}
    return ssh.Target(**{**fields, **changes})


def connect(target: ssh.Target, *, command_timeout: int = 30):
    return ssh.session(target, connect_timeout=CONNECT_TIMEOUT, command_timeout=command_timeout)


def failure_of(target: ssh.Target) -> ssh.SSHError:
    with pytest.raises(ssh.SSHError) as caught, connect(target):
        pass
    return caught.value


def test_a_password_login_runs_commands_as_the_machines_user(machines):
    for machine in machines:
        with connect(target_of(machine)) as session:
            assert session.run("whoami").stdout.strip() == machine.username


def test_a_private_key_login_needs_no_password(machines):
    machine = machines[0]
    with connect(target_of(machine, password="", private_key=machine.private_key)) as session:
        assert session.run("whoami").stdout.strip() == machine.username


def test_the_first_login_reports_the_machines_host_key(machines):
    with connect(target_of(machines[0])) as session:
        assert session.host_key == machines[0].host_key_line()


def test_a_wrong_password_is_a_refused_login_that_says_what_to_fix(machines):
    error = failure_of(target_of(machines[0], password="not-the-password"))
    assert isinstance(error, ssh.ConnectError)
    assert error.status == SSHStatus.AUTH_FAILED
    assert machines[0].username in error.message and "password" in error.message
    assert "not-the-password" not in error.message


def test_an_address_where_nothing_listens_is_refused(machines):
    host, port = machines.refused_address()
    error = failure_of(ssh.Target(host=host, port=port, username="x", password="y"))
    assert error.status == SSHStatus.REFUSED
    assert f"port {port}" in error.message


def test_an_address_that_never_answers_times_out_within_the_connect_timeout(machines):
    host, port = machines.silent_address()
    started = time.monotonic()
    error = failure_of(ssh.Target(host=host, port=port, username="x", password="y"))
    assert error.status == SSHStatus.TIMEOUT
    assert f"within {CONNECT_TIMEOUT} s" in error.message
    assert time.monotonic() - started < CONNECT_TIMEOUT + 5  # bounded, with room for a loaded machine


def test_a_port_that_accepts_but_never_speaks_ssh_times_out(machines):
    host, port = machines.mute_address()
    error = failure_of(ssh.Target(host=host, port=port, username="x", password="y"))
    assert error.status == SSHStatus.TIMEOUT
    assert "SSH greeting" in error.message


def test_a_pinned_host_key_lets_the_same_machine_in(machines):
    machine = machines[0]
    with connect(target_of(machine, pinned_host_key=machine.host_key_line())) as session:
        assert session.run("true").exit_code == 0


def test_a_changed_host_key_is_refused_and_the_offered_key_reported(fresh_machine):
    pinned = fresh_machine.host_key_line()
    fresh_machine.rotate_host_key()
    error = failure_of(target_of(fresh_machine, pinned_host_key=pinned))
    assert error.status == SSHStatus.HOST_KEY_CHANGED
    assert error.offered_host_key == fresh_machine.host_key_line()
    assert ssh.fingerprint(pinned) in error.message and ssh.fingerprint(error.offered_host_key) in error.message


def test_a_failing_command_quotes_what_it_said(machines):
    with connect(target_of(machines[0])) as session, pytest.raises(ssh.SSHError) as caught:
        session.run("ls /no/such/folder")
    assert caught.value.status == SSHStatus.FAILED
    assert "No such file" in caught.value.message and "exit 2" in caught.value.message


def test_a_command_running_too_long_is_stopped(machines):
    with connect(target_of(machines[0]), command_timeout=1) as session, pytest.raises(ssh.SSHError) as caught:
        session.run("sleep 30")
    assert caught.value.status == SSHStatus.TIMEOUT


def test_a_copied_file_arrives_whole_with_its_mode(machines):
    machine = machines[0]
    with connect(target_of(machine)) as session:
        session.put_text("secret=1\n", f"{machine.home}/settings.env", mode=0o600)
        assert session.run(f"stat -c %a {machine.home}/settings.env").stdout.strip() == "600"
        assert session.run(f"cat {machine.home}/settings.env").stdout == "secret=1\n"
        assert session.run(f"ls {machine.home}").stdout.split().count("settings.env.partial") == 0


def test_an_unreadable_private_key_is_refused_before_connecting():
    with pytest.raises(ValueError, match="Not a private key"):
        ssh.load_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nnonsense\n-----END OPENSSH PRIVATE KEY-----\n")


def test_a_targets_repr_never_shows_its_secrets():
    target = ssh.Target(host="10.0.0.1", port=22, username="lab", password="Hunter-22", private_key="KEYTEXT")
    assert "Hunter-22" not in repr(target) and "KEYTEXT" not in repr(target)
