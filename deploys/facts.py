"""Read-only probes of a node. Each fact's command exits 0 when the probed thing is simply absent
(pyinfra fails the host on a non-zero exit), and its `process` is a pure parse tested on data.
"""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

from artifacts.manifest import MANIFEST_NAME
from deploys.layout import OWNER_FILE, VENV_RECORD_NAME
from deploys.platforms import PACKAGE_TOOLS

_SECTION = "--ray-vllm-stack--"


def _sections(output: list[str]) -> list[list[str]]:
    """Splits output on the separator line the commands below print between their parts."""
    parts: list[list[str]] = [[]]
    for line in output:
        if line == _SECTION:
            parts.append([])
        else:
            parts[-1].append(line)
    return parts


class CpuCount(FactBase[int]):
    def command(self) -> str:
        return "nproc"

    def process(self, output: list[str]) -> int:
        return int(output[0])


class MemoryBytes(FactBase[int]):
    def command(self) -> str:
        return "grep '^MemTotal:' /proc/meminfo"

    def process(self, output: list[str]) -> int:
        kib = re.match(r"MemTotal:\s+(\d+)\s+kB", output[0])
        if not kib:
            raise ValueError(f"unexpected /proc/meminfo line: {output[0]!r}")
        return int(kib.group(1)) * 1024


class Ipv4Addresses(FactBase[list]):
    """Every IPv4 address: [{"interface", "address", "prefix"}], from `ip -o -4 addr show`."""

    _LINE = re.compile(r"^\d+:\s+(?P<interface>[^\s@]+)(@\S+)?\s+inet\s+(?P<address>[\d.]+)/(?P<prefix>\d+)")

    @staticmethod
    def default() -> list:
        return []

    def requires_command(self) -> str:
        return "ip"

    def command(self) -> str:
        return "ip -o -4 addr show"

    def process(self, output: list[str]) -> list:
        addresses = []
        for line in output:
            match = self._LINE.match(line)
            if match:
                addresses.append(
                    {"interface": match["interface"], "address": match["address"], "prefix": int(match["prefix"])}
                )
        return addresses


def python_version_command(interpreter: str) -> str:
    """Prints `interpreter`'s X.Y.Z: the one probe the version fact, the platform fact and the
    interpreter's post-push check all run."""
    return f"{shlex.quote(interpreter)} -c 'import platform; print(platform.python_version())'"


class PythonVersion(FactBase[str | None]):
    """The interpreter's full version (`3.11.2`), or None when it is not installed."""

    def requires_command(self, interpreter: str = "python3") -> str:
        return interpreter

    def command(self, interpreter: str = "python3") -> str:
        return python_version_command(interpreter)

    def process(self, output: list[str]) -> str:
        return output[0].strip()


class HostOwner(FactBase[str | None]):
    """The stack that owns the host (`<project>/<stack>`, the first line of `OWNER_FILE`), or None
    when no stack does."""

    def command(self) -> str:
        return f"cat {shlex.quote(OWNER_FILE)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() or None


class InstalledDebs(FactBase[dict]):
    """{package: version} of the Debian packages fully installed (dpkg status `ii`)."""

    @staticmethod
    def default() -> dict:
        return {}

    def requires_command(self) -> str:
        return "dpkg-query"

    def command(self) -> str:
        return "dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n'"

    def process(self, output: list[str]) -> dict:
        installed = {}
        for line in output:
            status, _, rest = line.partition("\t")
            name, _, version = rest.partition("\t")
            if status.strip() == "ii" and name:
                installed[name] = version
        return installed


class VenvPackages(FactBase[dict | None]):
    """`pip freeze --all` of a venv, the record left when provisioning installed it, and the folder
    of the interpreter that made it (`home` in pyvenv.cfg):
    {"freeze": [...], "record": {"lock": key, "freeze": [...]} | None, "home": str | None}; None without a venv."""

    def command(self, venv: str) -> str:
        python = shlex.quote(f"{venv}/bin/python")
        record = shlex.quote(f"{venv}/{VENV_RECORD_NAME}")
        config = shlex.quote(f"{venv}/pyvenv.cfg")
        return (
            f"if [ -x {python} ]; then echo {_SECTION}; "
            f"{python} -m pip freeze --all --disable-pip-version-check 2>/dev/null; "
            f"echo {_SECTION}; cat {record} 2>/dev/null; "
            f"echo {_SECTION}; sed -n 's/^home *= *//p' {config} 2>/dev/null; fi; true"
        )

    def process(self, output: list[str]) -> dict | None:
        parts = _sections(output)
        if len(parts) < 4:
            return None
        freeze, record_lines, home = parts[1], parts[2], parts[3]
        record = None
        if record_lines and record_lines[0].startswith("lock "):
            record = {"lock": record_lines[0].split(" ", 1)[1], "freeze": record_lines[1:]}
        return {"freeze": freeze, "record": record, "home": home[0].strip() if home else None}


class VenvDirectories(FactBase[list]):
    """The versioned venvs under `path` that provisioning finished (they hold its record), newest
    first: [name, ...]. A half-made venv has no record and is never a version to keep or run."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, path: str) -> str:
        root = shlex.quote(path)
        record = shlex.quote(VENV_RECORD_NAME)
        return (
            f"ls -1t {root}/ 2>/dev/null | while read -r name; do "
            f"[ -d {root}/\"$name\" ] && [ ! -L {root}/\"$name\" ] && [ -f {root}/\"$name\"/{record} ] && echo \"$name\"; "
            "done; true"
        )

    def process(self, output: list[str]) -> list:
        return [line for line in output if line]


class PathsInUnits(FactBase[list]):
    """Which of `paths` a unit of the stack names (its venv, its model folder): those are in use and
    never removed, whatever a retention count says."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, paths: list[str], units: str) -> str:
        quoted = " ".join(shlex.quote(path) for path in paths)
        return f"for p in {quoted}; do grep -lsqF -- \"$p/\" {units} && echo \"$p\"; done; true"

    def process(self, output: list[str]) -> list:
        return [line for line in output if line]


class SyncedTree(FactBase[dict]):
    """A pushed tree on the node: {"manifest": its MANIFEST.sha256 text or None, "failed": [paths]}.

    `failed` lists the manifest's files that are missing or, with `verify_content`, whose sha256
    no longer matches: what a refresh reports and the next apply re-pushes.
    """

    @staticmethod
    def default() -> dict:
        return {"manifest": None, "failed": []}

    def command(self, path: str, verify_content: bool) -> str:
        directory = shlex.quote(path)
        if verify_content:
            check = f"sha256sum -c {MANIFEST_NAME} 2>/dev/null | sed -n 's/: FAILED.*$//p'"
        else:
            check = f'while read -r _ name; do [ -f "$name" ] || printf "%s\\n" "$name"; done < {MANIFEST_NAME}'
        return (
            f"if [ -f {directory}/{MANIFEST_NAME} ]; then cd {directory} && cat {MANIFEST_NAME} "
            f"&& echo {_SECTION} && {{ {check}; }}; fi; true"
        )

    def process(self, output: list[str]) -> dict:
        parts = _sections(output)
        if len(parts) < 2:
            return self.default()
        return {"manifest": "".join(line + "\n" for line in parts[0]), "failed": sorted(filter(None, parts[1]))}


class UnreadableFiles(FactBase[bool]):
    """Whether anything under `path` is not readable by everyone (or a folder not enterable)."""

    def command(self, path: str) -> str:
        root = shlex.quote(path)
        return f"find {root} \\( ! -perm -a+r -o -type d ! -perm -a+x \\) -print -quit 2>/dev/null | grep -q . && echo yes || echo no"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "yes"


class ModelDirectories(FactBase[list]):
    """The model folders under `path` that the stack made, newest modification first: [name, ...].

    Only real directories (not symlinks) holding the stack's manifest count: whatever else lies
    there is not the stack's to delete."""

    @staticmethod
    def default() -> list:
        return []

    def command(self, path: str) -> str:
        root = shlex.quote(path)
        manifest = shlex.quote(MANIFEST_NAME)
        return (
            f"ls -1t {root}/ 2>/dev/null | while read -r name; do "
            f"[ -d {root}/\"$name\" ] && [ ! -L {root}/\"$name\" ] && [ -f {root}/\"$name\"/{manifest} ] && echo \"$name\"; "
            "done; true"
        )

    def process(self, output: list[str]) -> list:
        return [line for line in output if line]


class HostPlatform(FactBase[dict]):
    """What the node is, in one probe: the OS release, arch, glibc, package tools, the OS's python3
    and the NVIDIA driver, so the preflights decide from facts rather than assume one OS.

    {"os": {"id", "version_id", "codename", "name", "pretty_name"}, "arch": str, "glibc": str | None,
     "package_tools": [...], "python": str | None, "nvidia": see `parse_nvidia_smi` | None (no nvidia-smi)}
    """

    def command(self) -> str:
        tools = " ".join(PACKAGE_TOOLS)
        return (
            f"cat /etc/os-release 2>/dev/null; echo {_SECTION}; uname -m; echo {_SECTION}; "
            f"getconf GNU_LIBC_VERSION 2>/dev/null; ldd --version 2>/dev/null | head -n 1; echo {_SECTION}; "
            f"for tool in {tools}; do command -v $tool >/dev/null 2>&1 && echo $tool; done; echo {_SECTION}; "
            f"{python_version_command('python3')} 2>/dev/null; "
            f"if command -v nvidia-smi >/dev/null 2>&1; then echo {_SECTION}; "
            "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits 2>&1; "
            f"echo {_SECTION}; nvidia-smi 2>/dev/null; fi; true"
        )

    def process(self, output: list[str]) -> dict:
        sections = _sections(output)
        parts = sections + [[]] * (7 - len(sections))
        release = parse_os_release(parts[0])
        return {
            "os": {
                "id": release.get("ID"),
                "version_id": release.get("VERSION_ID"),
                "codename": release.get("VERSION_CODENAME"),
                "name": release.get("NAME"),
                "pretty_name": release.get("PRETTY_NAME"),
            },
            "arch": parts[1][0].strip() if parts[1] else None,
            "glibc": parse_glibc(parts[2]),
            "package_tools": [line for line in parts[3] if line in PACKAGE_TOOLS],
            "python": parts[4][0].strip() if parts[4] else None,
            "nvidia": parse_nvidia_smi(parts[5], parts[6]) if len(sections) > 5 else None,
        }


def parse_os_release(lines: list[str]) -> dict:
    """`/etc/os-release` as a dict (quotes removed, comments and blank lines skipped)."""
    release = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            release[key.strip()] = value.strip().strip("\"'")
    return release


_GLIBC = re.compile(r"^(?:glibc (\d+\.\d+)|ldd \(.*\) (\d+\.\d+))\s*$")


def parse_glibc(lines: list[str]) -> str | None:
    """The glibc version from `getconf GNU_LIBC_VERSION` (`glibc 2.36`) or the first line of
    `ldd --version` (`ldd (Debian GLIBC 2.36-9+deb12u14) 2.36`); None on musl or without either."""
    for line in lines:
        match = _GLIBC.match(line.strip())
        if match:
            return match[1] or match[2]
    return None


_CUDA = re.compile(r"CUDA (?:UMD )?Version:\s*(\d+(?:\.\d+)*)")
"""The highest CUDA the driver runs, from nvidia-smi's header (`CUDA UMD Version` from R610 on)."""


def parse_nvidia_smi(query: list[str], plain: list[str]) -> dict:
    """GPUs, driver and the CUDA version it supports, from `nvidia-smi --query-gpu=name,
    memory.total,driver_version --format=csv,noheader,nounits` and plain `nvidia-smi`.

    {"gpus": [{"name", "memory_mib", "driver"}], "driver": str | None, "cuda": str | None, "error": str | None}
    `error` holds nvidia-smi's own words when it is installed but cannot talk to the driver.
    """
    gpus, errors = [], []
    for line in query:
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 3 and fields[1].isdigit():
            gpus.append({"name": fields[0], "memory_mib": int(fields[1]), "driver": fields[2]})
        elif line.strip():
            errors.append(line.strip())
    cuda = next((match[1] for match in map(_CUDA.search, plain) if match), None)
    return {
        "gpus": gpus,
        "driver": gpus[0]["driver"] if gpus else None,
        "cuda": cuda,
        "error": "; ".join(errors) or None,
    }
