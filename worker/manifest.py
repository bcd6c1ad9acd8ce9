"""The install manifest: what is installed on this machine, and where.

A JSON file written by the control plane when it installs products and tools here:

    {"installs": [{"product": "calc", "version": "1.0", "path": "/opt/testhub/products/calc-1.0",
                   "tools": [{"tool": "pytest", "version": "8", "path": "/opt/testhub/tools/pytest-8"}]}]}

It is read again for every case, so an install or uninstall takes effect without a restart.
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict


class MissingInstall(Exception):
    """This machine lacks what the case needs: an infrastructure error, not a test failure."""


@dataclass(frozen=True)
class InstallPaths:
    product_path: str
    tool_path: str


class ToolInstall(TypedDict):
    """One tool installed for a product, as the manifest lists it."""

    tool: str
    version: str
    path: str


class Install(TypedDict):
    """One installed product with its tools, as the manifest lists it."""

    product: str
    version: str
    path: str
    tools: list[ToolInstall]


_cache: dict[Path, tuple[tuple[int, int], list[Install]]] = {}


def _read(path: Path) -> list[Install]:
    """The manifest's installs, parsed again only when the file changes."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached and cached[0] == version:
        return cached[1]
    try:
        # Parsed JSON, in the shape the control plane writes (entry); resolve() relies on it.
        installs: list[Install] = json.loads(path.read_text()).get("installs", [])
    except (ValueError, AttributeError) as error:
        raise MissingInstall(f"The install manifest {path} cannot be read: {error}") from None
    _cache[path] = (version, installs)
    return installs


def resolve(path: Path, *, product: str, product_version: str, tool: str, tool_version: str) -> InstallPaths:
    for install in _read(path):
        if (install["product"], install["version"]) != (product, product_version):
            continue
        for tool_install in install.get("tools", []):
            if (tool_install["tool"], tool_install["version"]) == (tool, tool_version):
                for folder in (install["path"], tool_install["path"]):
                    if not Path(folder).is_dir():
                        raise MissingInstall(f"{folder} is in the manifest but not on this machine.")
                return InstallPaths(product_path=install["path"], tool_path=tool_install["path"])
        raise MissingInstall(f"{tool} {tool_version} is not installed for {product} {product_version} here.")
    raise MissingInstall(f"{product} {product_version} is not installed here.")


def entry(
    *,
    product: str,
    version: str,
    path: str | os.PathLike[str],
    tools: Iterable[tuple[str, str, str | os.PathLike[str]]],
) -> Install:
    """One installed product with its tools, each (tool, version, path), in the manifest's shape."""
    return {
        "product": product,
        "version": version,
        "path": str(path),
        "tools": [
            {"tool": tool, "version": tool_version, "path": str(tool_path)} for tool, tool_version, tool_path in tools
        ],
    }


def document(installs: list[Install]) -> str:
    """The manifest file's text for these entries."""
    return json.dumps({"installs": installs}, indent=1)


def write(path: Path, installs: list[Install]) -> None:
    """Replace the manifest in one step: a worker reading it mid-write must see the old or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(document(installs))
    os.replace(partial, path)
