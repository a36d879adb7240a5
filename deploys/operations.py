"""Operations: compare a node's facts with the desired state and yield the commands that close the
gap, or `host.noop(<why nothing to do>)`. Every shell argument is quoted.

Checks that must stop a node before anything changes (OS release, glibc, NVIDIA driver) raise
`OperationError` while pyinfra prepares the operations, i.e. before any command runs.
"""

from __future__ import annotations

import base64
import shlex
from io import StringIO
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationError, operation
from pyinfra.api.command import StringCommand
from pyinfra.facts.files import Directory
from pyinfra.operations import files

from artifacts import manifest as manifests
from artifacts.manifest import MANIFEST_NAME
from artifacts.packages.lockfile import normalize_name
from deploys.facts import (
    HostOwner,
    HostPlatform,
    InstalledDebs,
    Ipv4Addresses,
    ModelDirectories,
    PathsInUnits,
    PythonVersion,
    SyncedTree,
    UnreadableFiles,
    VenvDirectories,
    VenvPackages,
    python_version_command,
)
from deploys.layout import (
    DEBS_DIR,
    INSTALL_CACHE,
    LEGACY_VENV,
    MODELS_ROOT,
    NVIDIA_KEYRING,
    NVIDIA_SOURCE_LIST,
    OWNER_FILE,
    UNIT_DIR,
    VENV_RECORD_NAME,
    VENVS_ROOT,
    VERIFIED_RELEASE,
)
from deploys.platforms import describe, platform_key, platform_problem
from deploys.runtime_env import render_env_file, runtime_env
from deploys.specs import (
    MODEL_DIRECTORY,
    VENV_PATH,
    DebFile,
    NvidiaDriverInstall,
    PlatformSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    SystemPackagesSpec,
    TreeSpec,
)
from deploys.transfer import push_files

# Present in every venv `python -m venv` makes; never uninstalled as extras.
VENV_BASE_PACKAGES = frozenset({"pip", "setuptools", "wheel"})
_PUSHED = ".MANIFEST.pushed"
_NEW_MANIFEST = ".MANIFEST.new"
_APT = "DEBIAN_FRONTEND=noninteractive apt-get"


def _q(*arguments: str) -> str:
    return " ".join(shlex.quote(str(argument)) for argument in arguments)


@operation()
def debs_installed(spec: SystemPackagesSpec):
    """Installs the missing packages of `spec.packages` from .deb files pushed from the controller
    (for nodes without a route to their package sources), once the node is seen to run the release
    the .debs are for: another release's .debs would install, and break it, or fail halfway."""
    platform = host.get_fact(HostPlatform)
    if platform_key(platform) != spec.release:
        raise OperationError(
            f"{host.name} runs {describe(platform)} but is configured as `os: {spec.release}`, "
            f"whose .debs the controller fetched for it; set the host's `os` to what it runs"
        )
    installed = host.get_fact(InstalledDebs)
    missing = [package for package in spec.packages if package not in installed]
    if not missing:
        host.noop(f"installed: {', '.join(spec.packages)}")
        return
    needed = missing_closure(missing, spec.debs, installed)
    debs = [spec.debs[name].file for name in needed]
    yield FunctionCommand(push_files, (spec.debs_dir, debs, DEBS_DIR, {}), {})
    # apt orders the local files itself; it wants absolute paths (and fails with --no-download).
    yield f"{_APT} install -y --no-install-recommends {_q(*(f'{DEBS_DIR}/{deb}' for deb in debs))}"


@operation()
def debs_from_sources(packages: tuple[str, ...], proxy: str | None = None):
    """A node with a route out installs the missing packages from its own apt sources (through
    `proxy`); its package index is refreshed only when something is missing."""
    installed = host.get_fact(InstalledDebs)
    missing = [package for package in packages if package not in installed]
    if not missing:
        host.noop(f"installed: {', '.join(packages)}")
        return
    through = f" -o Acquire::http::Proxy={_q(proxy)} -o Acquire::https::Proxy={_q(proxy)}" if proxy else ""
    yield f"{_APT}{through} update"
    yield f"{_APT}{through} install -y --no-install-recommends {_q(*missing)}"


def missing_closure(missing: list[str], debs: dict[str, DebFile], installed: dict[str, str]) -> list[str]:
    """`missing` plus their dependencies that are not installed, each with a .deb in `debs`."""
    needed: list[str] = []
    pending = list(missing)
    while pending:
        name = pending.pop(0)
        if name in needed or name in installed:
            continue
        if name not in debs:
            raise OperationError(
                f"system package {name} is missing and the controller has no .deb for it; "
                "add it to the node's system packages so it is downloaded"
            )
        needed.append(name)
        pending += debs[name].depends
    return needed


@operation()
def python_installed(spec: PythonRuntimeSpec):
    """Puts the stack's interpreter at its prefix and fails unless it runs as exactly
    `spec.version`: Ray refuses nodes whose Python patch version differs, so a mismatch must stop
    provisioning, not surface at `ray start`. A node whose glibc is older than the tree needs is
    refused before anything is pushed."""
    glibc = host.get_fact(HostPlatform)["glibc"]
    if glibc is None or _version(glibc) < _version(spec.glibc_floor):
        raise OperationError(
            f"the stack's Python {spec.version} needs glibc >= {spec.glibc_floor}, but the node has "
            f"{f'glibc {glibc}' if glibc else 'none (getconf GNU_LIBC_VERSION answered nothing)'}; "
            "run the node on a newer OS release (Debian 12+, Ubuntu 22.04+), or build the interpreter on an older one"
        )
    push = list(tree_synced._inner(tree=spec.tree))  # a noop when the node holds the tree
    interpreter = spec.interpreter
    if not push:
        found = host.get_fact(PythonVersion, interpreter=interpreter)
        if found != spec.version:
            raise OperationError(_python_mismatch(interpreter, found or "not runnable", spec.version))
        return
    yield from push
    mismatch = _python_mismatch(interpreter, "$found", spec.version)
    yield (
        f"found=$({python_version_command(interpreter)} 2>&1 | tail -n 1); "
        f'[ "$found" = {_q(spec.version)} ] || {{ echo "{mismatch}" >&2; exit 1; }}'
    )


def _python_mismatch(interpreter: str, found: str, version: str) -> str:
    return (
        f"{interpreter} is {found}, but the stack's package locks are for Python {version}; "
        f"every node must run exactly {version}"
    )


@operation()
def tree_synced(tree: TreeSpec):
    """Makes `tree.destination` hold `tree.source`'s content: pushes only files whose digest differs
    or that the node reports missing/corrupt, checks what arrived, then writes the manifest."""
    remote = host.get_fact(SyncedTree, path=tree.destination, verify_content=tree.verify_content)
    remote_entries = manifests.parse(remote["manifest"] or "")
    if remote_entries == tree.entries and not remote["failed"]:
        host.noop(f"{tree.destination} matches manifest {tree.digest[:12]}")
        return
    to_push = sorted(
        name for name, digest in tree.entries.items() if remote_entries.get(name) != digest or name in remote["failed"]
    )
    stale = sorted(name for name in set(remote_entries) - set(tree.entries) if _inside(name))
    destination = tree.destination
    if remote["manifest"] is not None:
        # Invalidate first: a push cut short leaves no manifest, so the next check re-pushes.
        yield f"rm -f {_q(f'{destination}/{MANIFEST_NAME}')}"
    if stale:
        yield f"cd {_q(destination)} && rm -f -- {_q(*stale)}"
    pushed = {name: tree.entries[name] for name in to_push}
    extra = {_NEW_MANIFEST: tree.manifest, _PUSHED: manifests.render(pushed)}
    yield FunctionCommand(push_files, (tree.source, to_push, destination, extra), {})
    # Checked on every core at once (one `sha256sum -c` per slice of the list): for weights in
    # a few multi-gigabyte files, the check would otherwise take longer than the push.
    yield (
        f"cd {_q(destination)} && split -e -n r/$(nproc) {_PUSHED} {_PUSHED}. "
        f"&& {{ failed=$(ls {_PUSHED}.* | xargs -P 0 -n 1 sha256sum -c 2>/dev/null | sed -n 's/: FAILED.*$//p' | tr '\\n' ' '); "
        f"rm -f {_PUSHED}.*; }} "
        f'&& if [ -n "$failed" ]; then echo "checksum mismatch in {destination}: $failed" >&2; exit 1; fi '
        f"&& mv {_NEW_MANIFEST} {MANIFEST_NAME} && rm -f {_PUSHED}"
    )


def _inside(name: str) -> bool:
    """A manifest entry read from a node names a file inside its tree (never `..` or absolute)."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


@operation()
def venv_installed(spec: PythonEnvSpec):
    """The venv holds exactly the locked package set (plus our plugin wheels), installed with hash
    checking offline from the pushed wheelhouse, or from `spec.index` on a node with a route out;
    extra packages are removed. uv (pushed with the wheelhouse) installs and compiles the bytecode
    once, on every core, so no service start compiles it again.

    The venv records the lock key and its `pip freeze --all` right after install, so a package
    changed by hand is seen (the freeze differs from the record) and repaired by the next run.
    """
    venv = host.get_fact(VenvPackages, venv=spec.venv)
    home = str(PurePosixPath(spec.interpreter).parent)
    if venv is not None and (venv["home"] != home or venv["record"] is None):
        # Made by another interpreter (the OS's python3, before the stack brought its own): its
        # packages would keep running on that one. Or never recorded: an install cut short (a full
        # disk, a lost host), maybe before `venv` seeded pip, which the record needs.
        yield f"rm -rf {_q(spec.venv)}"
        venv = None
    record = venv and venv["record"]
    if record and record["lock"] == spec.lock_key and manifests.lines_digest(venv["freeze"]) == manifests.lines_digest(record["freeze"]):
        host.noop(f"{spec.venv} holds lock {spec.lock_key}")
        return
    python = f"{spec.venv}/bin/python"
    wheelhouse = spec.wheelhouse.destination
    uv = f"{_installer_env(spec)} {_q(f'{wheelhouse}/{spec.installer}')} pip"
    target = f"--python {_q(python)} --quiet"
    if venv is None:
        # ensurepip run by itself, not by `venv`, which would hide pip's words (a full disk, say).
        yield f"{_q(spec.interpreter)} -m venv --without-pip {_q(spec.venv)} && {_q(python)} -m ensurepip --default-pip"
    yield (
        f"{uv} install {target} --compile-bytecode --only-binary :all: --require-hashes --no-deps "
        f"{wheel_source(spec)} --requirement {_q(f'{wheelhouse}/{spec.lock_file}')}"
    )
    if spec.plugin_wheels:
        plugins = [f"{wheelhouse}/{wheel}" for wheel in spec.plugin_wheels]
        yield f"{uv} install {target} --compile-bytecode --no-index --no-deps --reinstall {_q(*plugins)}"
    extras = sorted(freeze_names(venv["freeze"] if venv else []) - set(spec.packages) - VENV_BASE_PACKAGES)
    if extras:
        yield f"{uv} uninstall {target} {_q(*extras)}"
    record_file = f"{spec.venv}/{VENV_RECORD_NAME}"
    yield (
        f"{{ echo {_q(f'lock {spec.lock_key}')}; {_q(python)} -m pip freeze --all --disable-pip-version-check; }} "
        f"> {_q(record_file + '.new')} && mv {_q(record_file + '.new')} {_q(record_file)} && rm -rf {_q(INSTALL_CACHE)}"
    )


def _installer_env(spec: PythonEnvSpec) -> str:
    """uv's environment: its cache beside the venvs, no user or system config of the node's, never a
    Python of its own; with an index behind a proxy, the proxy (uv reads it from the environment)."""
    variables = [f"UV_CACHE_DIR={_q(INSTALL_CACHE)}", "UV_NO_CONFIG=1", "UV_PYTHON_DOWNLOADS=never"]
    if spec.index is not None and spec.index.proxy:
        variables += [f"{name}={_q(spec.index.proxy)}" for name in ("HTTP_PROXY", "HTTPS_PROXY")]
    return "env " + " ".join(variables)


def wheel_source(spec: PythonEnvSpec) -> str:
    """uv's options for where the locked wheels come from: the index, or only the pushed wheelhouse."""
    if spec.index is None:
        return f"--no-index --find-links {_q(spec.wheelhouse.destination)}"
    # A plain-http LAN mirror is allowed: the lock's hashes already pin every byte it serves, so it
    # can change nothing that gets installed.
    url = urlsplit(spec.index.url)
    insecure = f" --allow-insecure-host {_q(url.netloc)}" if url.scheme == "http" else ""
    return f"--index-url {_q(spec.index.url)}{insecure}"


def freeze_names(freeze: list[str]) -> set[str]:
    """Normalized distribution names of `pip freeze` lines (`name==1.0`, `name @ file:///...`)."""
    names = set()
    for line in freeze:
        name = line.split("==", 1)[0].split(" @ ", 1)[0].strip()
        if name and not name.startswith(("-", "#")):
            names.add(normalize_name(name))
    return names


STACK_UNITS = f"{UNIT_DIR}/rvs-*.service {VERIFIED_RELEASE}{UNIT_DIR}/rvs-*.service"
"""The stack's unit files, live and those of the verified release a failed upgrade returns to:
what `PathsInUnits` reads to know which venvs and models are in use."""


@operation()
def venvs_retained(current: str, keep_previous: int):
    """Keeps the current venv, the `keep_previous` newest others, and every venv a unit runs (a
    release that has not switched yet, or the one a failed upgrade went back to); removes the rest,
    and the unversioned venv of older stacks once no unit runs it."""
    others = [name for name in host.get_fact(VenvDirectories, path=VENVS_ROOT) if f"{VENVS_ROOT}/{name}" != current]
    candidates = [f"{VENVS_ROOT}/{name}" for name in others[keep_previous:] if VENV_PATH.match(f"{VENVS_ROOT}/{name}")]
    legacy = [LEGACY_VENV] if host.get_fact(Directory, path=LEGACY_VENV) else []
    in_use = set(host.get_fact(PathsInUnits, paths=[*candidates, *legacy], units=STACK_UNITS)) if candidates or legacy else set()
    expired = [path for path in [*candidates, *legacy] if path not in in_use]
    if not expired:
        host.noop(f"{len(others)} older venv(s), keeping up to {keep_previous} and those a unit runs")
        return
    yield f"rm -rf -- {_q(*expired)}"


@operation()
def models_retained(root: str, current: str, keep_previous: int):
    """Keeps the current model, the `keep_previous` newest others under `root`, and any a unit
    serves (the revision a failed upgrade went back to).

    Deletes only inside the models root, only folders the stack made (`ModelDirectories`), and on
    the node checks each resolved path before removing it: a bad name can never widen the delete."""
    if root != MODELS_ROOT:
        raise OperationError(f"refusing to manage models outside {MODELS_ROOT} (asked for {root})")
    others = [name for name in host.get_fact(ModelDirectories, path=root) if name != current]
    candidates = [name for name in others[keep_previous:] if MODEL_DIRECTORY.match(name)]
    paths = [f"{root}/{name}" for name in candidates]
    in_use = set(host.get_fact(PathsInUnits, paths=paths, units=STACK_UNITS)) if paths else set()
    expired = [name for name in candidates if f"{root}/{name}" not in in_use]
    if not expired:
        host.noop(f"{len(others)} older model(s) under {root}, keeping up to {keep_previous}")
        return
    yield (
        f"cd {_q(root)} && for name in {_q(*expired)}; do "
        f'if [ "$(realpath -e -- "$name")" = {_q(root)}/"$name" ]; then rm -rf -- "$name"; '
        f'else echo "refusing to remove $name: it resolves outside {root}" >&2; exit 1; fi; done'
    )


@operation()
def readable_by_all(path: str):
    """Makes a pushed tree readable by the services' unprivileged user: the tar stream keeps the
    controller's modes, and a model saved 0600 there would be unreadable to vLLM."""
    if not host.get_fact(UnreadableFiles, path=path):
        host.noop(f"everything under {path} is readable")
        return
    yield f"chmod -R a+rX {_q(path)}"


@operation()
def secret_file(path: str, content: str, owner: str, mode: str, restart_marker: str):
    """Writes a secret file atomically and with its final owner and mode: streamed on the command's
    stdin (never argv, never a world-readable upload in /tmp as pyinfra's sudo upload would make)
    into a new file beside it, created under umask 077 in its 0700 directory, then renamed over it.
    The node compares old and new content itself, so no digest of a secret ever leaves it; a
    change leaves `restart_marker`. Base64 keeps the bytes exact (stdin lines gain newlines)."""
    file = PurePosixPath(path)
    upload = str(file.with_name(f".{file.name}.new"))
    yield StringCommand(
        f"umask 077 && base64 -d > {_q(upload)} && "
        f"chown {_q(f'{owner}:{owner}')} {_q(upload)} && chmod {_q(mode)} {_q(upload)} && "
        f"if cmp -s {_q(upload)} {_q(path)} && [ \"$(stat -c %U:%a {_q(path)})\" = {_q(f'{owner}:{int(mode, 8):o}')} ]; "
        f"then rm -f {_q(upload)}; else mv -f {_q(upload)} {_q(path)} && touch {_q(restart_marker)}; fi",
        _stdin=base64.b64encode(content.encode()).decode(),
    )


@operation()
def runtime_env_file(spec: RuntimeEnvSpec):
    """Writes the node's runtime environment, derived from the interface carrying its address."""
    try:
        env = runtime_env(spec, host.get_fact(Ipv4Addresses))
    except ValueError as error:
        raise OperationError(str(error)) from None
    yield from files.put._inner(src=StringIO(render_env_file(env)), dest=spec.path, mode="644")


@operation()
def os_platform(spec: PlatformSpec):
    """Preflight: the node runs a supported OS release and arch (and the one the inventory declares),
    checked before anything on it changes: an unsupported node fails here in one sentence rather
    than halfway through installing."""
    found = host.get_fact(HostPlatform)
    problem = platform_problem(found, spec.declared, spec.supported, spec.arches)
    if problem is not None:
        raise OperationError(f"os preflight failed: {problem}")
    host.noop(f"{describe(found)} is supported")
    yield from ()


@operation()
def host_owned(owner: str):
    """Preflight: the host runs no other stack (`OWNER_FILE`), then records this one as its owner.
    Two stacks on one host would overwrite each other's units, token, venvs and models."""
    current = host.get_fact(HostOwner)
    if current == owner:
        host.noop(f"the host is the stack {owner}'s")
        return
    if current:
        raise OperationError(
            f"the host runs another stack, {current} ({OWNER_FILE}): stacks share no host; destroy that stack "
            "or give this one other hosts (a host freed by hand: remove that file once nothing of it runs)"
        )
    yield f"mkdir -p {_q(str(PurePosixPath(OWNER_FILE).parent))} && printf '%s\\n' {_q(owner)} > {_q(OWNER_FILE)}"


@operation()
def host_released(owner: str):
    """Removes the owner record if it is this stack's (a host another stack took since is left alone)."""
    if host.get_fact(HostOwner) != owner:
        host.noop(f"the host is not the stack {owner}'s")
        return
    yield f"rm -f {_q(OWNER_FILE)}"


@operation()
def nvidia_driver(min_driver: str, cuda: str, install: NvidiaDriverInstall | None = None):
    """Preflight: a driver new enough for the pinned torch's CUDA; without one, installs the
    configured pinned driver, or fails before anything on the node changed."""
    smi = host.get_fact(HostPlatform)["nvidia"]
    problem = driver_problem(smi, min_driver, cuda)
    if problem is None:
        host.noop(f"NVIDIA {_driver(smi)} is >= {min_driver}, runs CUDA {cuda}")
        return
    if install is None:
        raise OperationError(
            f"nvidia preflight failed: {problem}; install the NVIDIA driver >= {min_driver} (or set accelerator: cpu)"
        )
    yield from driver_install_commands(install)
    yield (
        "driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1) "
        f'&& dpkg --compare-versions "$driver" ge {_q(min_driver)} '
        f'|| {{ echo "nvidia preflight failed after installing the driver: found \'$driver\', need >= {min_driver}; '
        'reboot the host to load the driver module, then run again" >&2; exit 1; }'
    )


def driver_problem(smi: dict | None, min_driver: str, cuda: str) -> str | None:
    """Why the node's driver cannot run CUDA `cuda`, or None when it can. The driver's own CUDA
    version (nvidia-smi's header) is named beside its version: it is what users compare."""
    if smi is None:
        return "nvidia-smi not found"
    if smi["error"] or not smi["driver"]:
        return f"nvidia-smi failed: {smi['error'] or 'no GPU listed'}"
    if _version(smi["driver"]) < _version(min_driver):
        return f"{_driver(smi)} is older than {min_driver}, the minimum for CUDA {cuda} (the pinned torch build)"
    if smi["cuda"] and _version(smi["cuda"]) < _version(cuda):
        return f"{_driver(smi)} runs CUDA up to {smi['cuda']}, older than CUDA {cuda} (the pinned torch build)"
    return None


def _driver(smi: dict) -> str:
    return f"driver {smi['driver']} (CUDA {smi['cuda'] or 'not reported'})"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def driver_install_commands(install: NvidiaDriverInstall):
    """The configured apt repository (signed), its index alone, then the pinned packages."""
    source = f"deb [signed-by={NVIDIA_KEYRING}] {install.url} {install.suite}\n"
    yield from files.put._inner(src=StringIO(install.signing_key), dest=NVIDIA_KEYRING, mode="644")
    yield from files.put._inner(src=StringIO(source), dest=NVIDIA_SOURCE_LIST, mode="644")
    yield (
        f"{_APT} update -o Dir::Etc::sourcelist={_q(NVIDIA_SOURCE_LIST)} "
        "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    )
    yield f"{_APT} install -y --no-install-recommends {_q(*install.packages)}"
