"""The one way TestHub reaches a test machine: SSH through fabric, with pinned host keys and bounded waits.

Every failure is an SSHError whose `status` says what kind it is (unreachable, refused, timeout, login
refused, host key changed, command failed) and whose message says what a lab manager can do about it.
Credentials live in a Target only as long as a control task needs them: nothing here logs them, and
their repr hides them.
"""

import base64
import contextlib
import errno
import io
import logging
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from nodes.models import SSHStatus

logger = logging.getLogger(__name__)


class SSHError(Exception):
    def __init__(self, status: SSHStatus, message: str, *, offered_host_key: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.offered_host_key = offered_host_key


class ConnectError(SSHError):
    """The machine could not be logged in to at all (as opposed to a command that failed once logged in)."""


@dataclass(frozen=True)
class Target:
    """A machine and how to log in to it. `pinned_host_key` is "<type> <base64>", empty when never seen."""

    host: str
    port: int
    username: str
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    pinned_host_key: str = ""

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_code: int


def fingerprint(host_key: str) -> str:
    """SHA256:… as `ssh-keygen -lf` shows it, so a lab manager can compare it with the machine's own."""
    return _public_key(host_key).fingerprint if host_key else ""


def _public_key(host_key: str) -> paramiko.PKey:
    key_type, _, data = host_key.partition(" ")
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(data))


def _host_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def load_private_key(text: str) -> paramiko.PKey:
    """A private key in OpenSSH or PEM form, of any type paramiko knows; ValueError says what is wrong."""
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise ValueError("The private key is protected by a passphrase: give TestHub a key without one.") from None
        except (paramiko.SSHException, ValueError, IndexError, TypeError):
            continue
    raise ValueError("Not a private key TestHub can read: paste an OpenSSH or PEM ed25519, ECDSA or RSA key.")


class _RecordFirstKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use: a machine with no pinned key is accepted and its key recorded by the caller."""

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)


class Session:
    """An open SSH session: run commands and copy files, each bounded in time."""

    def __init__(self, connection: Connection, *, target: Target, command_timeout: int):
        self._connection = connection
        self._target = target
        self._command_timeout = command_timeout
        self.host_key = _host_key_line(connection.client.get_transport().get_remote_server_key())

    def run(self, command: str, *, timeout: int | None = None, check: bool = True) -> Result:
        """Run a shell command; with check, a non-zero exit is an SSHError quoting the command's own words."""
        timeout = timeout or self._command_timeout
        started = time.monotonic()
        try:
            outcome = self._connection.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
            # On a loaded machine the command's end (killed by the timer) can arrive before invoke's own timer
            # check: a command that ran its whole time and failed was stopped for it.
            if outcome.exited != 0 and time.monotonic() - started >= timeout:
                raise CommandTimedOut(outcome, timeout)
        except CommandTimedOut:
            raise SSHError(
                SSHStatus.TIMEOUT,
                f"{self._target.address}: a command ran longer than {timeout} s and was stopped: "
                f"{_first_line(command)}",
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise SSHError(SSHStatus.UNREACHABLE, f"{self._target.address}: the connection broke: {error}") from None
        result = Result(stdout=outcome.stdout, stderr=outcome.stderr, exit_code=outcome.exited)
        if check and result.exit_code != 0:
            said = (result.stderr.strip() or result.stdout.strip())[-800:]
            raise SSHError(
                SSHStatus.FAILED,
                f"{self._target.address}: {_first_line(command)} failed (exit {result.exit_code}): {said}",
            )
        return result

    def put(self, local: str | IO[bytes], remote: str, *, mode: int = 0o644) -> None:
        """Copy a file (a path or an open binary file) to `remote`, complete or not at all.

        The mode is set before any byte is written: a secret is never readable by others, even briefly.
        """
        partial = f"{remote}.partial"
        try:
            sftp = self._connection.sftp()
            sftp.get_channel().settimeout(self._command_timeout)  # a stalled transfer fails instead of hanging
            with contextlib.ExitStack() as files:
                source = files.enter_context(open(local, "rb")) if isinstance(local, str) else local
                target = files.enter_context(sftp.open(partial, "wb"))
                target.chmod(mode)
                target.set_pipelined(True)
                shutil.copyfileobj(source, target, 256 * 1024)
            sftp.posix_rename(partial, remote)
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise SSHError(
                SSHStatus.FAILED, f"{self._target.address}: could not copy a file to {remote}: {error}"
            ) from None

    def put_text(self, text: str, remote: str, *, mode: int = 0o600) -> None:
        self.put(io.BytesIO(text.encode()), remote, mode=mode)


def _first_line(command: str) -> str:
    line = command.strip().splitlines()[0] if command.strip() else ""
    return line if len(line) <= 120 else f"{line[:117]}..."


@contextmanager
def session(target: Target, *, connect_timeout: int, command_timeout: int) -> Iterator[Session]:
    """Log in to the machine, or raise SSHError within about `connect_timeout` seconds."""
    connect_kwargs = {
        "allow_agent": False,  # only the node's own credentials, never whatever this host happens to hold
        "look_for_keys": False,
        # Inside the handshake's own limit, so a silent peer is reported as such, not as a dead session.
        "banner_timeout": max(1, connect_timeout - 0.5),
        "auth_timeout": connect_timeout,
        "channel_timeout": connect_timeout,
    }
    if target.private_key:
        try:
            connect_kwargs["pkey"] = load_private_key(target.private_key)
        except ValueError as error:
            raise ConnectError(SSHStatus.AUTH_FAILED, f"{target.address}: {error}") from None
    if target.password:
        connect_kwargs["password"] = target.password
    if not (target.private_key or target.password):
        raise ConnectError(
            SSHStatus.AUTH_FAILED, f"{target.address}: the node has no password or private key: set one."
        )
    connection = Connection(
        target.host,
        user=target.username,
        port=target.port,
        connect_timeout=connect_timeout,
        connect_kwargs=connect_kwargs,
        config=Config(ssh_config=paramiko.SSHConfig(), lazy=True),  # never the control host's ~/.ssh/config
    )
    client = connection.client
    client.set_missing_host_key_policy(_RecordFirstKey())
    if target.pinned_host_key:
        pinned = _public_key(target.pinned_host_key)
        host_name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        client.get_host_keys().add(host_name, pinned.get_name(), pinned)
    try:
        connection.open()
    except paramiko.BadHostKeyException as error:
        connection.close()
        offered = _host_key_line(error.key)
        raise ConnectError(
            SSHStatus.HOST_KEY_CHANGED,
            f"{target.address} presented host key {error.key.fingerprint}, not the pinned "
            f"{error.expected_key.fingerprint}. If the machine was reinstalled or its keys were changed on "
            "purpose, accept the new key on the node; otherwise something else answers at this address.",
            offered_host_key=offered,
        ) from None
    except Exception as error:
        connection.close()
        raise _connect_error(target, error, connect_timeout) from None
    try:
        yield Session(connection, target=target, command_timeout=command_timeout)
    finally:
        connection.close()


def _connect_error(target: Target, error: Exception, timeout: int) -> ConnectError:
    where = f"{target.host}:{target.port}"
    if isinstance(error, paramiko.AuthenticationException):
        how = "private key" if target.private_key else "password"
        return ConnectError(
            SSHStatus.AUTH_FAILED,
            f"{where} refused the login of {target.username!r} with the stored {how}: "
            "correct the username, password or key on the node and check again.",
        )
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in error.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return ConnectError(
                SSHStatus.REFUSED,
                f"{where} refused the connection: the machine is up but nothing listens on port {target.port}. "
                "Start its SSH server (openssh-server) or correct the port.",
            )
        return ConnectError(
            SSHStatus.UNREACHABLE,
            f"{where} is unreachable (no route to it): check the address and the network.",
        )
    if isinstance(error, TimeoutError | socket.timeout):
        return ConnectError(
            SSHStatus.TIMEOUT,
            f"No answer from {where} within {timeout} s: the machine may be off, or a firewall drops SSH.",
        )
    if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN):
        return ConnectError(SSHStatus.UNREACHABLE, f"{where} is unreachable ({error.strerror}): check the address.")
    if isinstance(error, socket.gaierror):
        return ConnectError(SSHStatus.UNREACHABLE, f"{target.host} could not be resolved: {error}.")
    if isinstance(error, paramiko.SSHException):
        text = str(error)
        if "banner" in text.lower():
            return ConnectError(
                SSHStatus.TIMEOUT,
                f"{where} accepted the connection but sent no SSH greeting within {timeout} s: "
                "is it an SSH server, and is the machine overloaded?",
            )
        return ConnectError(SSHStatus.FAILED, f"{where}: SSH failed: {text}")
    logger.warning("unexpected SSH failure to %s: %s", where, type(error).__name__)
    return ConnectError(SSHStatus.FAILED, f"{where}: SSH failed: {error}")
