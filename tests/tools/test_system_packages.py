"""The controller's system packages: `make setup` installs what is missing as root, and only that;
as non-root it stops with the exact apt-get line. Run against a PATH of stubs, so the machine's
own packages are never touched: the stub apt-get records its arguments and "installs" a stub."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from artifacts.paths import REPO_ROOT
from lab import preflight
from lab.errors import LabError

SCRIPT = REPO_ROOT / "tools" / "system-packages.sh"
TABLE = REPO_ROOT / "tools" / "system-packages.tsv"
SCRIPT_TOOLS = ("bash", "grep", "awk", "cut", "dirname", "cat", "dpkg-query", "ls", "head", "sed", "sort", "uname")
"""What the script itself runs, besides the commands it looks for."""
NOBODY = [shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def rows() -> list[tuple[str, str, str]]:
    lines = [line for line in TABLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [tuple(line.split("\t")) for line in lines]


class StubMachine:
    """A PATH with every required command but the ones named missing, and an apt-get that records."""

    def __init__(self, root: Path, missing: set[str]):
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.apt_log = root / "apt-get.log"
        self.provides = {package: proofs.split(",") for package, proofs, _ in rows()}
        for tool in SCRIPT_TOOLS:
            self.link(tool)
        for package, proofs in self.provides.items():
            if package not in missing:
                for proof in proofs:
                    if not proof.startswith("/"):
                        self.link(proof.split(":")[0], stub=":" not in proof)
        commands = " ".join(f"{p}={','.join(c for c in cs if ':' not in c and not c.startswith('/'))}"
                            for p, cs in self.provides.items())  # fmt: skip
        (self.bin / "apt-get").write_text(f"""#!/bin/bash
echo "$*" >> {self.apt_log}
[ "$1" = install ] || exit 0
for spec in {commands}; do
  for wanted in "$@"; do
    if [ "${{spec%%=*}}" = "$wanted" ]; then
      IFS=, read -ra tools <<< "${{spec#*=}}"
      for tool in "${{tools[@]}}"; do printf '#!/bin/sh\\n' > {self.bin}/$tool; chmod +x {self.bin}/$tool; done
    fi
  done
done
""")
        (self.bin / "apt-get").chmod(0o755)

    def link(self, tool: str, stub: bool = False) -> None:
        target = self.bin / tool
        real = shutil.which(tool)
        if target.exists():
            return
        if stub or real is None:
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)
        else:
            target.symlink_to(real)

    def run(self, mode: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
        argv = [*(NOBODY if as_nobody else []), str(SCRIPT), mode]
        return subprocess.run(argv, env={"PATH": str(self.bin)}, capture_output=True, text=True, timeout=60)

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


@pytest.fixture
def machine_dir():
    """A scratch folder that the unprivileged user can read too (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="rvs-system-packages-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_as_root_setup_installs_only_what_is_missing_and_only_once(machine_dir):
    machine = StubMachine(machine_dir, missing={"debootstrap"})
    done = machine.run("install")
    assert done.returncode == 0, done.stderr
    assert machine.apt_calls() == ["update -qq", "install -y -qq --no-install-recommends debootstrap"]
    assert (machine.bin / "debootstrap").exists()
    again = machine.run("install")
    assert again.returncode == 0 and again.stdout == again.stderr == ""
    assert len(machine.apt_calls()) == 2, "a second setup must not call apt-get again"


def test_as_non_root_setup_prints_the_exact_apt_get_line_and_fails(machine_dir):
    machine = StubMachine(machine_dir, missing={"debootstrap", "openssh-client"})
    done = machine.run("install", as_nobody=True)
    assert done.returncode == 1
    assert "run as root: apt-get update && apt-get install -y --no-install-recommends debootstrap openssh-client\n" in done.stderr
    assert "  debootstrap: the lab's base root filesystem" in done.stderr
    assert machine.apt_calls() == []
    # Positive control: with everything present the same non-root call succeeds silently.
    complete = StubMachine(machine_dir / "complete", missing=set())
    ok = complete.run("install", as_nobody=True)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


def test_check_and_doctor_name_what_is_missing(machine_dir):
    machine = StubMachine(machine_dir, missing={"iproute2"})
    check = machine.run("check")
    assert check.returncode == 1
    assert check.stderr.endswith("apt-get update && apt-get install -y --no-install-recommends iproute2\n")
    doctor = machine.run("doctor")
    states = {line.split()[1]: line.split()[0] for line in doctor.stdout.splitlines()[1:len(rows()) + 1]}
    assert states == {package: ("MISSING" if package == "iproute2" else "ok") for package, _, _ in rows()}
    assert machine.apt_calls() == []


def test_the_labs_preflight_uses_the_same_check(machine_dir, monkeypatch):
    machine = StubMachine(machine_dir, missing={"debootstrap"})
    monkeypatch.setenv("PATH", str(machine.bin))
    with pytest.raises(LabError, match=r"debootstrap: the lab's base root filesystem"):
        preflight.require_machine_support()
    (machine.bin / "debootstrap").write_text("#!/bin/sh\n")
    (machine.bin / "debootstrap").chmod(0o755)
    preflight.require_machine_support()


def test_readme_lists_exactly_the_packages_setup_installs():
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- system-packages -->")[1]
    listed = re.findall(r"^\| `([a-z0-9.+-]+)` \|", block, re.MULTILINE)
    assert listed == [package for package, _, _ in rows()]


def test_go_too_old_or_missing_is_replaced_by_the_pinned_toolchain(machine_dir):
    """Debian 12 ships Go 1.19: setup then fetches the pinned toolchain (sha256-checked) and builds with it."""
    old_go = machine_dir / "old" / "go"
    old_go.parent.mkdir()
    old_go.write_text("#!/bin/sh\necho go1.19.8\n")
    old_go.chmod(0o755)
    base = machine_dir / "base"
    base.mkdir()
    for tool in ("bash", "sed", "sort", "head", "uname", "mkdir", "dirname", "python3.11"):
        (base / tool).symlink_to(shutil.which(tool))
    env = {"PATH": f"{old_go.parent}:{base}", **({"GOPROXY": os.environ["GOPROXY"]} if "GOPROXY" in os.environ else {})}
    done = subprocess.run([REPO_ROOT / "tools" / "setup-go.sh", "path"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    go = Path(done.stdout.strip())
    assert go == REPO_ROOT / ".tools" / "go-1.26.8" / "bin" / "go"
    assert subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout.strip() == "go1.26.8"
    # Positive control: a new enough Go on PATH is used as it is.
    new_go = machine_dir / "new" / "go"
    new_go.parent.mkdir()
    new_go.write_text("#!/bin/sh\necho go1.99.0\n")
    new_go.chmod(0o755)
    env["PATH"] = f"{new_go.parent}:{base}"
    used = subprocess.run([REPO_ROOT / "tools" / "setup-go.sh", "path"], env=env, capture_output=True, text=True, timeout=60)
    assert used.stdout.strip() == str(new_go)


def test_ci_fails_a_skipped_test_unless_it_needs_a_gpu(tmp_path):
    """RVS_REQUIRE_LAB=1 (set by .ci/run) turns every skip into a failure that keeps the reason."""
    (tmp_path / "conftest.py").write_text(
        "import tests.conftest as rules\n"
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"
        "rules.GPU_ONLY_TESTS = frozenset({'test_probe.py::test_needs_a_gpu'})\n"
    )
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n"
        "def test_runs():\n    pass\n"
        "def test_lab_cannot_start():\n    pytest.skip('lab hosts need root')\n"
        "def test_needs_a_gpu():\n    pytest.skip('no GPU here')\n"
    )

    def pytest_run(require: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RVS_REQUIRE_LAB": require}
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip

    required = pytest_run("1")
    assert required.returncode == 1
    assert "1 failed, 1 passed, 1 skipped" in required.stdout
    assert "FAILED test_probe.py::test_lab_cannot_start" in required.stdout
    assert "skipped under RVS_REQUIRE_LAB=1, where every test must run (Skipped: lab hosts need root)" in required.stdout
    # Positive control: outside CI the same tests skip and the run passes.
    relaxed = pytest_run("0")
    assert relaxed.returncode == 0 and "1 passed, 2 skipped" in relaxed.stdout
