"""What a browser test needs, shared by tests/browser and tests/hub (which imports it from here): Debian's
Chromium (installed with apt when missing; never a downloaded browser), node
>= 18, and a package directory's node_modules (`npm ci` from its lock file),
plus small helpers (free loopback ports, log tails)."""
import os
import pathlib
import re
import shutil
import socket
import subprocess

import pytest

CHROMIUM = pathlib.Path("/usr/bin/chromium")

_apt_updated = False


def apt_install(*packages):
    global _apt_updated
    if os.geteuid() != 0:
        pytest.fail(f"{' '.join(packages)} missing and not root: install with "
                    f"`apt-get install -y {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        r = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"apt-get update failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        _apt_updated = True
    r = subprocess.run(["apt-get", "install", "-y", *packages], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"apt-get install {' '.join(packages)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


def ensure_chromium():
    if not CHROMIUM.exists():
        apt_install("chromium")
    assert CHROMIUM.exists(), f"{CHROMIUM} still missing after apt-get install chromium"
    return CHROMIUM


def ensure_node():
    """The path of node (>= 18, for playwright-core); apt installs it when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        apt_install("nodejs", "npm")
    node = shutil.which("node")
    assert node, "node is missing"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))
    assert major >= 18, f"playwright-core needs node >= 18, found {version}"
    return node


def npm_ci(package_dir, *required):
    """`npm ci` in package_dir when one of the `required` packages is not in
    its node_modules (the lock file pins them; none downloads a browser)."""
    package_dir = pathlib.Path(package_dir)
    if all((package_dir / "node_modules" / name / "package.json").exists() for name in required):
        return
    r = subprocess.run([shutil.which("npm"), "ci", "--no-audit", "--no-fund"], cwd=package_dir,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"npm ci in {package_dir} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=60):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
