"""Turn raw stack config into a `StackConfig`, or a list of problems that each name a key and a fix.

Runs at the start of every `pulumi preview`/`up`, before any resource is declared, so bad input
changes nothing on any host. Every problem is reported at once rather than the first only.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from artifacts.debs import RELEASES
from stack.cloud import check_cloud, with_cloud_hosts
from stack.config import SECRET_KEYS, HostConfig, StackConfig
from stack.planner.plan import layout_size_problem, partition_problems
from stack.planner.shape import read_config_json

CONFIG_NAMESPACE = "ray-vllm-stack"

CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ENV_VALUE = re.compile(r"^[A-Za-z0-9_./:,=+@%-]{0,256}$")
EXTRA_ARG = re.compile(r"^(--[a-z0-9][a-z0-9_-]{0,63}(=[A-Za-z0-9_./:,=+@%{}\[\]\"-]{0,512})?|[A-Za-z0-9_./:,=+@%{}\[\]\"-]{1,512})$")
SECRET_VALUE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
"""Keys and tokens: long enough to resist guessing, and no character a shell, an env file or an HTTP
header could read differently."""

MANAGED_ENV = {
    "RAY_AUTH_MODE": "ray_token (token authentication is always on)",
    "RAY_AUTH_TOKEN_PATH": "ray_token",
    "RAY_AUTH_TOKEN": "ray_token",
    "RAY_ADDRESS": "hosts (the head's address) and ports.gcs",
    "VLLM_HOST_IP": "hosts[].address",
    "VLLM_PORT": "ports.vllm_internal",
    "VLLM_API_KEY": "api_key",
    "VLLM_PP_LAYER_PARTITION": "parallelism.layer_partition",
    "VLLM_CPU_KVCACHE_SPACE": "vllm.cpu_kvcache_space_gb",
    "GLOO_SOCKET_IFNAME": "network.interface",
    "NCCL_SOCKET_IFNAME": "network.interface",
    "NCCL_IB_DISABLE": "network.nccl_ib_disable",
    "HF_TOKEN": "hf_token",
    "TMPDIR": "the service layout (Ray and vLLM share one temp dir)",
    "VLLM_RPC_BASE_PATH": "the service layout (Ray and vLLM share one temp dir)",
    "AUTOSCALER_METRIC_PORT": "ports.autoscaler_metrics",
    "DASHBOARD_METRIC_PORT": "ports.dashboard_metrics",
    "HF_HUB_OFFLINE": "model.path or model.huggingface (nodes never reach a hub)",
}
"""Variables the stack sets itself; `network.env` may not override them (it would, silently)."""

MANAGED_ENV_PREFIXES = {"RAY_AUTH_": "ray_token"}

MANAGED_FLAGS = {
    "--host": "security.api_bind",
    "--port": "ports.vllm",
    "--api-key": "api_key",
    "--model": "model.path or model.huggingface",
    "--served-model-name": "model.served_name",
    "--pipeline-parallel-size": "parallelism.pipeline_size",
    "--tensor-parallel-size": "parallelism.tensor_size",
    "--distributed-executor-backend": "parallelism (the stack runs vLLM on Ray)",
    "--dtype": "model.dtype",
    "--quantization": "model.quantization",
    "--max-model-len": "vllm.max_model_len",
    "--gpu-memory-utilization": "vllm.gpu_memory_utilization",
    "--enforce-eager": "vllm.enforce_eager",
    "--ssl-keyfile": "security.tls",
    "--ssl-certfile": "security.tls",
    "--allowed-origins": "security (the API front answers every origin's request only with the key)",
    "--uds": "ports.vllm",
}
"""vLLM flags the stack renders itself; `vllm.extra_args` may not repeat them."""
MANAGED_SHORT_FLAGS = {"-pp": "--pipeline-parallel-size", "-tp": "--tensor-parallel-size", "-q": "--quantization"}

PATTERN_HINTS = {
    "served_name": "use letters, digits, `.`, `_` or `-`, starting with a letter or digit (it names a directory on every node)",
    "user": "use a login name: lower-case letters, digits, `_` or `-`, starting with a letter or `_`",
    "service_user": "use a login name: lower-case letters, digits, `_` or `-`, starting with a letter or `_`",
    "interface": "use an interface name as `ip link` shows it (letters, digits, `_`, `.`, `-`, at most 15)",
    "hf_endpoint": "use a plain http(s) URL such as https://hf-mirror.example.com",
    "url": "use a plain http(s) URL such as https://repo.example.com/cuda/debian12/x86_64",
    "name": "use letters, digits, spaces and `._()+-`",
    "suite": "use `/` for a flat repository or a suite name such as bookworm",
    "groups.name": "use lower-case letters, digits and `-`, starting with a letter, at most 50 (it names the group's hosts)",
    "[key]": "use a key of letters, digits and `_.:/=+@-`",
    "tags": "use a tag value of letters, digits, spaces and `_.:/=+@-`",
    "image": "use an AMI id: `ami-` and 8 or 17 hex digits, as the EC2 console shows it",
    "subnet_id": "use a subnet id: `subnet-` and 8 or 17 hex digits",
    "region": "use an AWS region name such as us-east-1",
    "instance_type": "use an EC2 instance type name such as g6e.xlarge",
    "ssh_user": "use a login name: lower-case letters, digits, `_` or `-`, starting with a letter or `_`",
    **dict.fromkeys(
        ("debian_mirror", "debian_security_mirror", "ubuntu_mirror"),
        "use a plain http(s) URL such as http://deb.debian.org/debian, or file:///<path> of a mirror on the controller",
    ),
}
"""The fix for a value that does not match its field's pattern, by field name."""


class ConfigError(ValueError):
    """Invalid stack config; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n" + "\n".join(f"  - {line}" for line in problems))


def load_stack_config(raw: dict[str, Any], secret_keys: set[str], root: Path) -> StackConfig:
    """Validate `raw` (config keys without the namespace); relative paths resolve against `root`."""
    problems = list(_plaintext_secrets(raw, secret_keys))
    raw, hosts_source = _with_inventory_hosts(raw, root, problems)
    control = list(_control_characters(raw, hosts_source))
    problems += control
    # A value with a control character is one problem, already reported: drop later lines on its key.
    named = {line.partition(": ")[0] for line in control}

    def new(lines: list[str]) -> list[str]:
        return [line for line in lines if line.partition(": ")[0] not in named]

    try:
        config = StackConfig.model_validate(_resolve_paths(raw, root))
    except ValidationError as error:
        problems += new([_describe(item, hosts_source) for item in error.errors()])
        raise ConfigError(problems) from None
    cloud_problems = new([f"{key}: {message}" for key, message in check_cloud(config)])
    if cloud_problems:  # the cloud's hosts cannot be made, so the checks across hosts would mislead
        raise ConfigError(problems + cloud_problems)
    config = with_cloud_hosts(config)
    problems += new([f"{key}: {message}" for key, message in check_stack(config)])
    if problems:
        raise ConfigError(problems)
    return config


def check_stack(config: StackConfig) -> Iterator[tuple[str, str]]:
    """Rules across fields, over the inventory's and the cloud's hosts alike; yields (config key, message with the fix)."""
    if not config.hosts:
        yield "hosts", "the stack has no hosts; list them in `inventory` (or `hosts`), or rent them with `cloud.groups`"
        return
    yield from _check_roles(config.hosts)
    yield from _check_unique_hosts(config.hosts)
    yield from _check_hosts_gpus(config.hosts)
    yield from _check_pushed_release(config.hosts)
    yield from _check_ssh_keys(config.hosts)
    yield from _check_sudo(config.hosts)
    yield from _check_subnet(config)
    yield from _check_ports(config)
    yield from _check_model_source(config)
    yield from _check_driver_install(config)
    yield from _check_python_source(config)
    yield from _check_parallel_layout(config)
    yield from _check_layer_partition(config)
    yield from _check_secret_values(config)
    yield from _check_env(config)
    yield from _check_extra_args(config)
    yield from _check_host_keys(config)
    yield from _check_tls(config)
    yield from _check_service_user(config)


def unverified_host_keys(config: StackConfig) -> list[str]:
    """Hosts whose SSH host keys are not checked: the preview warns about each."""
    return [host.name for host in config.hosts if host.ssh.host_keys == "ignore"]


def model_layer_count(config: StackConfig) -> int | None:
    """`num_hidden_layers` from the model's config.json, when it is on the controller."""
    file = config.model.config_file
    return int(read_config_json(file)["num_hidden_layers"]) if file is not None and file.is_file() else None


def _plaintext_secrets(raw: dict[str, Any], secret_keys: set[str]) -> Iterator[str]:
    for key in SECRET_KEYS:
        if key in raw and key not in secret_keys:
            generated = " (or remove it to have one generated)" if key in ("ray_token", "api_key") else ""
            yield f"{key}: given in plain text; store it encrypted with `pulumi config set --secret {key} <value>`{generated}"


def _control_characters(raw: Any, hosts_source: str, location: tuple = ()) -> Iterator[str]:
    """A newline in any value could start a new line of a unit or an env file; tabs and escapes
    hide text in terminals. Secrets are named, never shown."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            if CONTROL_CHARACTER.search(str(key)):
                yield f"{_key(list(location), hosts_source)}: the key {str(key)!r} contains a control character; remove it"
                continue
            yield from _control_characters(value, hosts_source, (*location, key))
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _control_characters(value, hosts_source, (*location, index))
    elif isinstance(raw, str) and CONTROL_CHARACTER.search(raw):
        yield f"{_key(list(location), hosts_source)}: contains a control character (newline, tab, escape...); remove it"


def _with_inventory_hosts(raw: dict[str, Any], root: Path, problems: list[str]) -> tuple[dict[str, Any], str]:
    """Replace `inventory: <file>` with the file's hosts; returns the raw config and where hosts came from."""
    if "inventory" not in raw:
        return raw, "hosts"
    raw = dict(raw)
    inventory = Path(raw.pop("inventory"))
    if "hosts" in raw:
        problems.append("inventory: set either `inventory` or `hosts`, not both")
    path = inventory if inventory.is_absolute() else root / inventory
    if not path.is_file():
        problems.append(
            f"inventory: file {inventory} not found; for the lab run `python -m lab up`, "
            "for real hosts write it as described in inventory/README.md"
        )
        raw.setdefault("hosts", [])
        return raw, "hosts"
    raw["hosts"] = (yaml.safe_load(path.read_text()) or {}).get("hosts", [])
    return raw, f"{inventory}: hosts"


def _resolve_paths(raw: dict[str, Any], root: Path) -> dict[str, Any]:
    """Relative file paths in config are relative to the project directory, not the caller's cwd."""

    def absolute(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else root / path)

    raw = json.loads(json.dumps(raw))
    for host in raw.get("hosts", []):
        if isinstance(host, dict) and isinstance(host.get("ssh"), dict) and "key_file" in host["ssh"]:
            host["ssh"]["key_file"] = absolute(host["ssh"]["key_file"])
    python = raw.get("python")
    if isinstance(python, dict) and "file" in python:
        python["file"] = absolute(python["file"])
    driver = raw.get("nvidia_driver_install")
    if isinstance(driver, dict) and "signing_key_file" in driver:
        driver["signing_key_file"] = absolute(driver["signing_key_file"])
    security = raw.get("security")
    if isinstance(security, dict):
        for key in ("tls_cert_file", "tls_key_file"):
            if key in security:
                security[key] = absolute(security[key])
    cloud = raw.get("cloud")
    if isinstance(cloud, dict) and "public_key_file" in cloud:
        cloud["public_key_file"] = absolute(cloud["public_key_file"])
    model = raw.get("model")
    if isinstance(model, dict):
        for key in ("path", "config_json"):
            if key in model:
                model[key] = absolute(model[key])
    return raw


def _key(location: list[Any], hosts_source: str) -> str:
    key = _dotted(location)
    if location and location[0] == "hosts":
        key = hosts_source + key[len("hosts"):]
    return key


def _describe(error: dict[str, Any], hosts_source: str) -> str:
    location = list(error["loc"])
    key = _key(location, hosts_source)
    if location and location[0] in SECRET_KEYS:
        return f"{key}: {error['msg']} (the value is a secret and is not shown)"
    if error["type"] == "string_pattern_mismatch":
        # The most specific hint: `groups.name` before `name`; a dict's key or value by the dict's name.
        names = [part for part in location if isinstance(part, str)]
        candidates = [".".join(names[-2:]), names[-1] if names else "", *reversed(names[:-1])]
        hint = next((PATTERN_HINTS[name] for name in candidates if name in PATTERN_HINTS), None)
        hint = hint or f"it must match {error['ctx']['pattern']}"
        return f"{key}: {error['input']!r} is not allowed; {hint}"
    if error["type"] == "extra_forbidden":
        suggestion = _suggest(location)
        return f"{key}: unknown key{suggestion}; remove it or fix its spelling"
    if error["type"] == "literal_error":
        choices = error["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"{key}: unknown value {error['input']!r}; use one of: {choices}"
    if error["type"] == "value_error":
        return f"{key}: {error['ctx']['error']} (got {error['input']!r})"
    if error["type"] == "missing":
        return f"{key}: required; set it in Pulumi.<stack>.yaml"
    return f"{key}: {error['msg']} (got {error['input']!r})"


def _dotted(location: list[Any]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _suggest(location: list[Any]) -> str:
    """'did you mean ...?' from the fields of the model the unknown key sits in."""
    model: type[BaseModel] | None = StackConfig
    for part in location[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if model is None:
        return ""
    match = difflib.get_close_matches(str(location[-1]), list(model.model_fields), n=1)
    return f" (did you mean `{match[0]}`?)" if match else ""


def _check_roles(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    heads = [host.name for host in hosts if host.role == "head"]
    if not heads:
        yield "hosts", "no host has role `head`; give exactly one host `role: head`"
    elif len(heads) > 1:
        yield "hosts", f"{len(heads)} hosts have role `head` ({', '.join(heads)}); keep exactly one, make the others `worker`"


def _check_unique_hosts(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for field in ("name", "address"):
        counts = Counter(str(getattr(host, field)) for host in hosts if getattr(host, field) is not None)
        for value, count in counts.items():
            if count > 1:
                yield f"hosts[].{field}", f"{value} is used by {count} hosts; each host needs its own {field}"


def _check_hosts_gpus(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if host.accelerator == "nvidia" and not host.gpus:
            yield f"hosts[{index}].gpus", f"{host.name} is `nvidia` but lists no GPUs; add `gpus: [{{memory_gb: 24}}]`"
        if host.accelerator == "cpu" and host.gpus:
            yield f"hosts[{index}].gpus", f"{host.name} is `cpu` but lists GPUs; remove them or set `accelerator: nvidia`"


def _check_pushed_release(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if not host.route_out and host.os is None:
            yield f"hosts[{index}].os", (
                f"{host.name} has `route_out: false`, so the controller pushes its system packages and must know "
                f"which release's .debs to fetch: set `os` to one of {', '.join(RELEASES)}"
            )


def _check_ssh_keys(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if host.cloud_group is None and not host.ssh.key_file.is_file():
            yield (
                f"hosts[{index}].ssh.key_file",
                f"{host.ssh.key_file} does not exist; point it at the private key that logs in to {host.name}",
            )


def _check_sudo(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if host.ssh.user != "root" and not host.ssh.uses_sudo:
            yield f"hosts[{index}].ssh.sudo", (
                f"{host.ssh.user} is not root, and the stack writes /opt, /etc and /var and manages systemd units "
                f"on {host.name}: remove `sudo: false` (the user needs password-less sudo, or set the secret "
                "`pulumi config set --secret sudo_password <password>`), or log in as root"
            )


def _check_subnet(config: StackConfig) -> Iterator[tuple[str, str]]:
    subnet = config.network.subnet
    for index, host in enumerate(config.hosts):
        if subnet is not None and host.address is not None and host.address not in subnet:
            yield f"hosts[{index}].address", f"{host.address} is outside network.subnet {subnet}; fix one of them"


def _check_ports(config: StackConfig) -> Iterator[tuple[str, str]]:
    ports = config.ports
    if ports.min_worker > ports.max_worker:
        yield "ports.min_worker", f"{ports.min_worker} is above ports.max_worker {ports.max_worker}; swap them"
    by_value: dict[int, list[str]] = {}
    for name, value in ports.single_ports().items():
        by_value.setdefault(value, []).append(name)
    for value, names in by_value.items():
        if len(names) > 1:
            yield f"ports.{names[1]}", f"{value} is also ports.{names[0]}; give each service its own port"
        if ports.min_worker <= value <= ports.max_worker:
            yield f"ports.{names[0]}", (
                f"{value} lies in the worker port range {ports.min_worker}-{ports.max_worker}; move it out of the range"
            )


def _check_model_source(config: StackConfig) -> Iterator[tuple[str, str]]:
    model = config.model
    if (model.path is None) == (model.huggingface is None):
        yield "model", "set exactly one of `model.path` (a local directory) or `model.huggingface` (owner/repo@revision)"
    if model.path is not None and not (model.path / "config.json").is_file():
        hint = " (for the lab model run `make model`)" if "tiny" in model.path.name else ""
        yield "model.path", f"{model.path} is not a model directory with a config.json{hint}"
    if model.config_json is not None and not model.config_json.is_file():
        yield "model.config_json", f"{model.config_json} does not exist; point it at the model's config.json"
    if config.accelerator == "cpu" and model.quantization is not None:
        yield "model.quantization", "quantized models need GPUs; remove it for cpu hosts"


def _check_driver_install(config: StackConfig) -> Iterator[tuple[str, str]]:
    driver = config.nvidia_driver_install
    if driver is not None and not driver.signing_key_file.is_file():
        yield "nvidia_driver_install.signing_key_file", (
            f"{driver.signing_key_file} does not exist; save the repository's ASCII-armored key there"
        )


def _check_python_source(config: StackConfig) -> Iterator[tuple[str, str]]:
    python = config.python
    given = python.model_fields_set
    if {"url", "file"} <= given:
        yield "python", "set either `python.url` or `python.file`, not both"
    if given & {"url", "file"} and "sha256" not in given:
        yield "python.sha256", "give the sha256 of the tarball at `python.url` or `python.file` (its source changed)"
    if python.file is not None and not python.file.is_file():
        yield "python.file", f"{python.file} does not exist; point it at a CPython source tarball"


def _check_parallel_layout(config: StackConfig) -> Iterator[tuple[str, str]]:
    layout = config.parallelism
    devices = sum(host.stage_devices for host in config.hosts)
    if problem := layout_size_problem(layout.pipeline_size, layout.tensor_size, devices, noun="accelerators"):
        per_host = ", ".join(f"{host.name}: {host.stage_devices}" for host in config.hosts)
        yield "parallelism", f"{problem} (the hosts have {per_host})"
    for index, host in enumerate(config.hosts):
        if host.stage_devices % layout.tensor_size:
            yield f"hosts[{index}].gpus", (
                f"{host.name} has {host.stage_devices} device(s), not a multiple of parallelism.tensor_size "
                f"{layout.tensor_size}; tensor parallelism stays within a host"
            )
    kinds = {host.accelerator for host in config.hosts}
    if len(kinds) > 1:
        yield "hosts[].accelerator", "hosts mix `cpu` and `nvidia`; one cluster runs one vLLM build, use one kind"


def _check_layer_partition(config: StackConfig) -> Iterator[tuple[str, str]]:
    partition = config.parallelism.layer_partition
    if partition is not None:
        for problem in partition_problems(partition, config.parallelism.pipeline_size, model_layer_count(config)):
            yield "parallelism.layer_partition", problem


def _check_secret_values(config: StackConfig) -> Iterator[tuple[str, str]]:
    for key in ("ray_token", "api_key"):
        secret = getattr(config, key)
        if secret is not None and not SECRET_VALUE.match(secret.get_secret_value()):
            yield key, (
                "must be 16-256 characters of letters, digits and `._~+/=-` (the value is a secret and is not shown); "
                f"set a new one with `pulumi config set --secret {key} <value>`, or remove it to have one generated"
            )


def _check_env(config: StackConfig) -> Iterator[tuple[str, str]]:
    for name, value in config.network.env.items():
        if not ENV_KEY.match(name):
            yield "network.env", f"{name!r} is not a variable name; use letters, digits and `_`, not starting with a digit"
            continue
        key = f"network.env.{name}"
        managed = MANAGED_ENV.get(name) or next(
            (owner for prefix, owner in MANAGED_ENV_PREFIXES.items() if name.startswith(prefix)), None
        )
        if managed is not None:
            yield key, f"is set by the stack from {managed}; remove it from network.env and set that instead"
        elif not ENV_VALUE.match(value):
            yield key, f"{value!r} is not allowed; use letters, digits and `_./:,=+@%-` (no spaces, quotes or `$`)"


def _check_extra_args(config: StackConfig) -> Iterator[tuple[str, str]]:
    for index, argument in enumerate(config.vllm.extra_args):
        key = f"vllm.extra_args[{index}]"
        if not EXTRA_ARG.match(argument):
            yield key, (
                f"{argument!r} is not allowed; give `--flag`, `--flag=value` or a plain value of letters, digits "
                "and `_./:,=+@%{}[]\"-` (no spaces, quotes around the whole, or `$`)"
            )
            continue
        if owner := _managed_flag(argument):
            yield key, f"{argument.partition('=')[0]} is set by the stack from {owner}; remove it and set that instead"


def _managed_flag(argument: str) -> str | None:
    """The config key behind a managed vLLM flag, also when abbreviated or spelled with `_` (vLLM's
    parser accepts both)."""
    flag = argument.partition("=")[0]
    if flag in MANAGED_SHORT_FLAGS:
        return MANAGED_FLAGS[MANAGED_SHORT_FLAGS[flag]]
    if not flag.startswith("--") or flag == "--":
        return None
    flag = flag.replace("_", "-")
    for managed, owner in MANAGED_FLAGS.items():
        if managed.startswith(flag):
            return owner
    return None


def _check_host_keys(config: StackConfig) -> Iterator[tuple[str, str]]:
    if config.security.allow_unverified_host_keys:
        return
    for index, host in enumerate(config.hosts):
        if host.ssh.host_keys == "ignore" and not host.lab:
            yield f"hosts[{index}].ssh.host_keys", (
                f"`ignore` skips {host.name}'s host key check, so anyone on the path could pose as it; "
                "use `accept-new` (the default), or set security.allow_unverified_host_keys: true if you accept that"
            )


def _check_tls(config: StackConfig) -> Iterator[tuple[str, str]]:
    security = config.security
    files = {"tls_cert_file": security.tls_cert_file, "tls_key_file": security.tls_key_file}
    for key, path in files.items():
        if security.tls == "files" and path is None:
            yield f"security.{key}", "required with security.tls: files; point it at the PEM file"
        elif security.tls == "files" and not path.is_file():
            yield f"security.{key}", f"{path} does not exist; point it at the PEM file"
        elif security.tls != "files" and path is not None:
            yield f"security.{key}", "is used only with security.tls: files; set that or remove this key"


def _check_service_user(config: StackConfig) -> Iterator[tuple[str, str]]:
    if config.security.service_user == "root":
        yield "security.service_user", "Ray and vLLM must not run as root; use an unprivileged name such as ray-vllm"
