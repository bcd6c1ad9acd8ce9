"""The install manifest: what is installed on this machine, and where.

A JSON file written by the control plane when it installs products and tools here:

    {"installs": [{"product": "calc", "version": "1.0", "path": "/opt/testhub/products/calc-1.0",
                   "tools": [{"tool": "pytest", "version": "8", "path": "/opt/testhub/tools/pytest-8"}]}]}

It is read again for every case, so an install or uninstall takes effect without a restart.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from worker.protocol import capability_queue


class MissingInstall(Exception):
    """This machine lacks what the case needs: an infrastructure error, not a test failure."""


@dataclass(frozen=True)
class InstallPaths:
    product_path: str
    tool_path: str


def _read(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text()).get("installs", [])
    except FileNotFoundError:
        return []
    except (ValueError, AttributeError) as error:
        raise MissingInstall(f"The install manifest {path} cannot be read: {error}") from None


def queues(path: Path) -> list[str]:
    """The capability queues of every product/tool pair in the manifest."""
    return sorted(
        {
            capability_queue(
                product=install["product"],
                product_version=install["version"],
                tool=tool["tool"],
                tool_version=tool["version"],
            )
            for install in _read(path)
            for tool in install.get("tools", [])
        }
    )


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
