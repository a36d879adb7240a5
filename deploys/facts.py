"""Read-only probes of a node. Each fact's command exits 0 when the probed thing is simply absent
(pyinfra fails the host on a non-zero exit), and its `process` is a pure parse tested on data.
"""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

from artifacts.manifest import MANIFEST_NAME
from deploys.layout import VENV_RECORD_NAME

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


class OsRelease(FactBase[dict]):
    """`/etc/os-release` as a dict: ID, VERSION_ID, PRETTY_NAME..."""

    @staticmethod
    def default() -> dict:
        return {}

    def command(self) -> str:
        return "cat /etc/os-release 2>/dev/null || true"

    def process(self, output: list[str]) -> dict:
        release = {}
        for line in output:
            key, sep, value = line.partition("=")
            if sep:
                release[key.strip()] = value.strip().strip('"')
        return release


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


class PythonVersion(FactBase[str | None]):
    """The interpreter's full version (`3.11.2`), or None when it is not installed."""

    def requires_command(self, interpreter: str = "python3") -> str:
        return interpreter

    def command(self, interpreter: str = "python3") -> str:
        return f"{shlex.quote(interpreter)} -c 'import platform; print(platform.python_version())'"

    def process(self, output: list[str]) -> str:
        return output[0].strip()


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


class GlibcVersion(FactBase[str | None]):
    """The node's glibc (`2.36`), or None without one (musl)."""

    def command(self) -> str:
        return "getconf GNU_LIBC_VERSION 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        match = re.fullmatch(r"glibc (\d+\.\d+)", output[0].strip()) if output else None
        return match and match[1]


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


class NvidiaSmi(FactBase[dict | None]):
    """GPUs, driver and CUDA version from nvidia-smi; None when nvidia-smi is not installed.

    {"gpus": [{"name", "memory_mib", "driver"}], "driver": str, "cuda": str | None, "error": str | None}
    `error` holds nvidia-smi's own words when it is installed but cannot talk to the driver.
    """

    def requires_command(self) -> str:
        return "nvidia-smi"

    def command(self) -> str:
        return (
            "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits 2>&1; "
            f"echo {_SECTION}; nvidia-smi 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' || true"
        )

    def process(self, output: list[str]) -> dict:
        gpu_lines, cuda_lines = (_sections(output) + [[]])[:2]
        gpus, errors = [], []
        for line in gpu_lines:
            fields = [field.strip() for field in line.split(",")]
            if len(fields) == 3 and fields[1].isdigit():
                gpus.append({"name": fields[0], "memory_mib": int(fields[1]), "driver": fields[2]})
            elif line.strip():
                errors.append(line.strip())
        cuda = cuda_lines[0].split(":")[1].strip() if cuda_lines else None
        return {
            "gpus": gpus,
            "driver": gpus[0]["driver"] if gpus else None,
            "cuda": cuda,
            "error": "; ".join(errors) or None,
        }
