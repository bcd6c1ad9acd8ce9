"""Simulated test machines for tests of the SSH control plane: real sshd servers on loopback.

A machine is a Linux user created for this test run, with its own sshd (run as root) on its own
loopback address: 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127.0.0.0/8 to lo). The control
plane logs in by password or key, runs commands, uploads over SFTP and starts background processes
there exactly as on a real machine. `Machines` also hands out addresses that fail the ways networks
fail: refused, silent (connect() times out) and mute (TCP connects, SSH never says a word).

Needs root and /usr/sbin/sshd; bin/test installs openssh-server when it is missing.
"""

import atexit
import contextlib
import ctypes
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGKILL

import pytest

SSHD = Path("/usr/sbin/sshd")
FIRST_HOST = ipaddress.IPv4Address("127.0.0.2")
FAULT_HOST = "127.0.0.1"
RUN_DIR_PREFIX = "testhub-machines-"
SSHD_START_TIMEOUT = 10  # seconds; generous, for a loaded CI machine
KILL_TIMEOUT = 10

_PR_SET_CHILD_SUBREAPER = 36
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child must not load anything


def _become_subreaper():
    # Runs in sshd's process before exec. Background processes the control plane starts over SSH
    # outlive their session; as a subreaper, sshd adopts them instead of PID 1 and reaps them as soon
    # as they die (it reaps every child). Without this they stay zombies for as long as PID 1 takes
    # to reap them (seconds on some VMs, forever in containers without an init), and meanwhile
    # `kill -0` calls a killed worker alive.
    _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@dataclass
class Machine:
    """One test machine: a user of its own and an sshd of its own that lets only that user in."""

    name: str
    host: str
    port: int
    username: str
    password: str
    private_key: str = field(repr=False)  # OpenSSH PEM text; its public key is in ~/.ssh/authorized_keys
    home: Path
    host_key_path: Path
    state_dir: Path = field(repr=False)  # the controller's side: sshd config, keys, pid file, log
    _sshd: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.username).pw_uid

    @property
    def sshd_log(self) -> Path:
        return self.state_dir / "sshd.log"

    def host_key_line(self) -> str:
        """The public host key as "ssh-ed25519 AAAA...", what a client that pinned it stored."""
        key_type, key_base64 = Path(f"{self.host_key_path}.pub").read_text().split()[:2]
        return f"{key_type} {key_base64}"

    def start_sshd(self) -> None:
        """Starts this machine's sshd; returns once it answers on its address with an SSH banner."""
        if self._sshd is not None and self._sshd.poll() is None:
            return
        pid_file = self.state_dir / "sshd.pid"
        pid_file.unlink(missing_ok=True)
        with self.sshd_log.open("ab") as log:
            self._sshd = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", self.state_dir / "sshd_config"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for pytest must not stop it before teardown does
                preexec_fn=_become_subreaper,
            )
        deadline = time.monotonic() + SSHD_START_TIMEOUT
        # sshd writes its pid file only once it listens, so the banner is surely ours, not a stranger's on the port.
        while not (pid_file.exists() and _answers_ssh(self.host, self.port)):
            if self._sshd.poll() is not None:
                raise RuntimeError(f"sshd of {self.name} exited with {self._sshd.returncode}:\n{_tail(self.sshd_log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd of {self.name} did not answer on {self.host}:{self.port}")
            time.sleep(0.02)

    def stop_sshd(self) -> None:
        """Stops the listening sshd, so new connections are refused; open sessions go on, as on a real machine."""
        if self._sshd is None:
            return
        self._sshd.terminate()
        try:
            self._sshd.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._sshd.kill()
            self._sshd.wait()
        self._sshd = None

    def rotate_host_key(self) -> None:
        """Gives the machine a new host key and restarts its sshd on the same address, as a reinstall would."""
        self.stop_sshd()
        self.host_key_path.unlink()
        Path(f"{self.host_key_path}.pub").unlink()
        _generate_key(self.host_key_path, comment=f"host key of {self.name}")
        self.start_sshd()

    def kill_user_processes(self, signal: int = SIGKILL) -> None:
        """Signals every process of this machine's user. With SIGKILL (a crash) it returns once none is left."""
        _kill_processes_of(self.uid, signal)
        if signal == SIGKILL:
            _wait_until_reaped(self.uid)


class Machines:
    """Test machines and faulty addresses for one test run; `close()` removes all of them.

    Names are unique per run, and a run that died without closing is cleaned up by the next one,
    so nothing a killed run left behind (users, sshds, worker processes) gets in a new run's way.
    """

    def __init__(self):
        _reap_leftovers()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.run_id = secrets.token_hex(3)
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{self.run_id}-"))
        (self.state_dir / "owner").write_text(_process_identity(os.getpid()))
        self.machines: list[Machine] = []
        self._added = 0
        self._fault_addresses: dict[str, tuple[str, int]] = {}
        self._held_sockets: list[socket.socket] = []
        self._closed = False
        atexit.register(self.close)  # for runs that end without the fixture's teardown

    def __getitem__(self, index: int) -> Machine:
        return self.machines[index]

    def __iter__(self):
        return iter(self.machines)

    def __len__(self) -> int:
        return len(self.machines)

    def add(self) -> Machine:
        """Creates a machine and starts its sshd."""
        self._added += 1  # never reused, so names and addresses stay unique even after remove()
        username = f"th{self.run_id}m{self._added}"
        state_dir = self.state_dir / username
        state_dir.mkdir()
        host = str(FIRST_HOST + self._added - 1)
        machine = Machine(
            name=f"machine{self._added}",
            host=host,
            port=_free_port(host),
            username=username,
            password=secrets.token_urlsafe(16),
            private_key="",
            home=Path("/home") / username,
            host_key_path=state_dir / "host_key",
            state_dir=state_dir,
        )
        self.machines.append(machine)  # before anything exists, so a failure half-way is cleaned up too
        try:
            self._set_up(machine)
        except BaseException:
            self.remove(machine)
            raise
        return machine

    def _set_up(self, machine: Machine) -> None:
        _run("useradd", "-m", "-d", machine.home, "-s", "/bin/sh", "-c", "TestHub test machine", machine.username)
        machine.home.chmod(0o700)  # login.defs may leave homes world-readable; machines must not see each other's
        _run("chpasswd", stdin_text=f"{machine.username}:{machine.password}\n")

        user_key = machine.state_dir / "id_ed25519"
        _generate_key(user_key, comment=machine.username)
        machine.private_key = user_key.read_text()
        ssh_dir = machine.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
        account = pwd.getpwnam(machine.username)
        for path in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(path, account.pw_uid, account.pw_gid)

        _generate_key(machine.host_key_path, comment=f"host key of {machine.name}")
        (machine.state_dir / "sshd_config").write_text(
            f"""\
ListenAddress {machine.host}:{machine.port}
HostKey {machine.host_key_path}
PidFile {machine.state_dir / "sshd.pid"}
AllowUsers {machine.username}
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
StrictModes no
UseDNS no
MaxStartups 50
LoginGraceTime 30
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
"""
        )
        machine.start_sshd()

    def remove(self, machine: Machine) -> None:
        """Takes a machine down for good: its processes, its sshd, its user and home."""
        try:
            _remove_user(machine.username)
        finally:
            machine.stop_sshd()
            self.machines.remove(machine)

    def refused_address(self) -> tuple[str, int]:
        """An address where connecting is refused at once.

        A socket bound there that never listens holds the port: the kernel answers every SYN with a
        RST, and no other program can take the port while we hold it.
        """
        if "refused" not in self._fault_addresses:
            holder = self._hold(socket.socket())
            holder.bind((FAULT_HOST, 0))
            self._fault_addresses["refused"] = holder.getsockname()
        return self._fault_addresses["refused"]

    def silent_address(self) -> tuple[str, int]:
        """An address where TCP SYNs get no answer at all, so a client's connect() times out.

        A listener with backlog 0 has room for one connection in its accept queue. We fill the queue
        and never accept; from then on Linux drops every SYN to it: no SYN-ACK, no RST. Filling it is
        checked, not assumed: the first filler connect that times out proves the address silent.
        """
        if "silent" not in self._fault_addresses:
            listener = self._hold(socket.socket())
            listener.bind((FAULT_HOST, 0))
            listener.listen(0)
            address = listener.getsockname()
            for _ in range(5):
                filler = socket.socket()
                filler.settimeout(0.2)
                try:
                    filler.connect(address)
                except TimeoutError:
                    filler.close()
                    break
                self._hold(filler)
            else:
                raise RuntimeError("a backlog-0 listener kept accepting connections: no silent address on this kernel")
            self._fault_addresses["silent"] = address
        return self._fault_addresses["silent"]

    def mute_address(self) -> tuple[str, int]:
        """An address that accepts TCP connections but never sends an SSH banner, or anything.

        The kernel completes handshakes into a listener's accept queue on its own; nobody ever
        accepts them. (After SOMAXCONN connections it would turn silent; no test makes that many.)
        """
        if "mute" not in self._fault_addresses:
            listener = self._hold(socket.socket())
            listener.bind((FAULT_HOST, 0))
            listener.listen(socket.SOMAXCONN)
            self._fault_addresses["mute"] = listener.getsockname()
        return self._fault_addresses["mute"]

    def _hold(self, sock: socket.socket) -> socket.socket:
        self._held_sockets.append(sock)
        return sock

    def close(self) -> None:
        """Removes every machine and faulty address.

        Goes on past a failure and reports it at the end, keeping the state dir so that the next
        run's leftover cleanup tries again.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        failures = []
        for machine in list(self.machines):
            try:
                self.remove(machine)
            except Exception as error:
                failures.append(f"{machine.name} ({machine.username}): {error}")
        for sock in self._held_sockets:
            sock.close()
        if failures:
            raise RuntimeError("could not remove every test machine:\n" + "\n".join(failures))
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def machines():
    """Two test machines for the whole session; `machines.add()` makes more. All go with the session."""
    if not SSHD.exists():
        pytest.fail(f"{SSHD} is missing: run bin/test, which installs openssh-server", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the test machines create Linux users and run sshd: run the tests as root", pytrace=False)
    session_machines = Machines()
    try:
        session_machines.add()
        session_machines.add()
        yield session_machines
    finally:
        session_machines.close()


@pytest.fixture
def fresh_machine(machines):
    """A machine of the test's own, for tests that break it (rotate its host key, stop sshd, kill its processes)."""
    machine = machines.add()
    yield machine
    machines.remove(machine)


def _run(*argv: str | Path, stdin_text: str | None = None) -> None:
    result = subprocess.run([str(arg) for arg in argv], input=stdin_text, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with {result.returncode}: {result.stderr.strip()}")


def _generate_key(path: Path, *, comment: str) -> None:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _answers_ssh(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _process_identity(pid: int) -> str | None:
    """The pid with the process's start time: a pid alone may since belong to another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start_time = stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces
    return f"{pid} {start_time}"


def _processes_of(uid: int) -> dict[int, str]:
    """pid -> state letter of every process whose real or effective uid is `uid`, zombies ("Z") included."""
    processes = {}
    for status_file in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):  # ended while we looked
            status = dict(line.split(":", 1) for line in status_file.read_text().splitlines())
            real_uid, effective_uid = status["Uid"].split()[:2]
            if uid in (int(real_uid), int(effective_uid)):
                processes[int(status_file.parent.name)] = status["State"].split()[0]
    return processes


def _kill_processes_of(uid: int, signal: int) -> None:
    deadline = time.monotonic() + KILL_TIMEOUT
    while living := [pid for pid, state in _processes_of(uid).items() if state != "Z"]:
        for pid in living:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal)
        if signal != SIGKILL:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of uid {uid} outlived SIGKILL for {KILL_TIMEOUT} s: {living}")
        time.sleep(0.02)  # and again: one may have forked meanwhile


def _wait_until_reaped(uid: int) -> None:
    # Dead already, but a pid check (kill -0, ps) should see them gone too: zombies wait for their
    # parent to reap them, at once for sshd, later for PID 1 (which adopts sessions of a stopped sshd).
    deadline = time.monotonic() + 2
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _remove_user(username: str) -> None:
    try:
        uid = pwd.getpwnam(username).pw_uid
    except KeyError:
        return
    _kill_processes_of(uid, SIGKILL)  # while sshd still runs: it reaps the ones it adopted
    _run("userdel", "-r", username)


def _reap_leftovers() -> None:
    """Removes what runs that died without closing left: users, their processes, sshds, state dirs.

    Worth it beyond tidiness: a worker left running on a dead run's machine could still serve a
    Redis db that a later run reuses.
    """
    for run_dir in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        try:
            owner = (run_dir / "owner").read_text()
            owner_pid = int(owner.split()[0])
        except (OSError, ValueError, IndexError):  # no owner yet: a run that is just starting
            continue
        if _process_identity(owner_pid) == owner:
            continue
        with contextlib.suppress(Exception):  # best effort: two new runs may reap the same leftovers at once
            for machine_dir in (path for path in run_dir.iterdir() if path.is_dir()):
                _remove_user(machine_dir.name)
                _kill_leftover_sshd(machine_dir)
            shutil.rmtree(run_dir)


def _kill_leftover_sshd(machine_dir: Path) -> None:
    pid_file = machine_dir / "sshd.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(OSError):  # gone already, or the pid is another process's by now
        if str(machine_dir / "sshd_config") in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, SIGKILL)
