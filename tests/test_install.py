"""`make install` installs exactly the versions in requirements/constraints.txt."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
# Installed only with a CUDA build of torch, which the constraints pin by version alone.
PLATFORM_ONLY = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")


def pins(lines) -> dict[str, str]:
    """{normalized name: version without a local label} of `name==version` lines."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.split("+", 1)[0]
    return out


def test_constraints_pin_every_direct_dependency():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", d).group()).lower() for d in direct}
    missing = names - {"rlhf-lite"} - set(pins(CONSTRAINTS.read_text().splitlines()))
    assert not missing, f"direct dependencies without a pinned version: {sorted(missing)}"


@pytest.mark.skipif(not (Path(sys.prefix) / ".installed").is_file(), reason="not the virtualenv `make install` made")
def test_make_install_installed_the_locked_versions():
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    installed = {k: v for k, v in pins(freeze).items() if not PLATFORM_ONLY.match(k)}
    locked = pins(CONSTRAINTS.read_text().splitlines())
    differ = {
        k: (installed.get(k), locked.get(k)) for k in set(installed) | set(locked) if installed.get(k) != locked.get(k)
    }
    assert not differ, f"installed vs locked versions differ: {differ}"
