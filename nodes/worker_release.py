"""The worker as shipped to test machines: its code, its pinned requirements and their wheels, in one archive.

Machines need no package index: every dependency is a pure-Python wheel in the archive. The release name
is the worker's version plus a digest of its code, so changed code is a new release even before the
version is bumped, and the worker reports that name in its heartbeats.
"""

import fcntl
import hashlib
import io
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

import worker

WORKER_SOURCE = Path(worker.__file__).resolve().parent
REQUIREMENTS = WORKER_SOURCE / "requirements.txt"


class WorkerReleaseError(Exception):
    """The release could not be built on this control host; the message says why."""


@dataclass(frozen=True)
class WorkerRelease:
    name: str
    archive: Path


def _source_files() -> list[Path]:
    return sorted([*WORKER_SOURCE.glob("*.py"), REQUIREMENTS])


def release_name() -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{worker.__version__}+{digest.hexdigest()[:10]}"


@contextmanager
def _exclusive(lock_path: Path):
    """Control processes that deploy at the same time build the release once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _wheels(folder: Path) -> list[Path]:
    """The requirements' wheels, downloaded once per requirements file."""
    done = folder / ".complete"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        downloaded = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
                "--python-version", "3.11", "-r", str(REQUIREMENTS), "-d", str(folder),
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if downloaded.returncode != 0:
            raise WorkerReleaseError(
                "Could not download the worker's packages on the control host (pip download -r "
                f"worker/requirements.txt): {downloaded.stderr.strip()[-800:]} Give the control host access to a "
                f"package index (PIP_INDEX_URL), or put the wheels in {folder} and create {done.name} there."
            )
        done.touch()
    return sorted(folder.glob("*.whl"))


def worker_release() -> WorkerRelease:
    """The current release's archive, built on first use and kept under the data folder."""
    name = release_name()
    releases = Path(settings.DATA_DIR) / "worker-releases"
    archive = releases / f"testhub-worker-{name}.tar.gz"
    with _exclusive(releases / ".lock"):
        if not archive.exists():
            requirements_digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
            wheels = _wheels(releases / f"wheels-{requirements_digest}")
            partial = archive.with_suffix(".partial")
            with tarfile.open(partial, "w:gz") as tar:
                for path in _source_files():
                    tar.add(path, arcname=f"worker/{path.name}")
                _add_text(tar, "worker/RELEASE", name + "\n")
                for wheel in wheels:
                    tar.add(wheel, arcname=f"wheels/{wheel.name}")
            partial.rename(archive)
    return WorkerRelease(name=name, archive=archive)


def _add_text(tar: tarfile.TarFile, arcname: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))
