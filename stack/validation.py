"""Turn raw stack config into a `StackConfig`, or a list of problems that each name a key and a fix.

Runs at the start of every `pulumi preview`/`up`, before any resource is declared, so bad input
changes nothing on any host. Every problem is reported at once rather than the first only.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from stack.config import SECRET_KEYS, HostConfig, StackConfig
from stack.planner.plan import layout_size_problem, partition_problems
from stack.planner.shape import read_config_json

CONFIG_NAMESPACE = "ray-vllm-stack"


class ConfigError(ValueError):
    """Invalid stack config; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n" + "\n".join(f"  - {line}" for line in problems))


def load_stack_config(raw: dict[str, Any], secret_keys: set[str], root: Path) -> StackConfig:
    """Validate `raw` (config keys without the namespace); relative paths resolve against `root`."""
    problems = list(_plaintext_secrets(raw, secret_keys))
    raw, hosts_source = _with_inventory_hosts(raw, root, problems)
    try:
        config = StackConfig.model_validate(_resolve_paths(raw, root))
    except ValidationError as error:
        problems += [_describe(item, hosts_source) for item in error.errors()]
        raise ConfigError(problems) from None
    problems += [f"{key}: {message}" for key, message in check_stack(config)]
    if problems:
        raise ConfigError(problems)
    return config


def check_stack(config: StackConfig) -> Iterator[tuple[str, str]]:
    """Rules across fields; yields (config key, message with the fix)."""
    yield from _check_roles(config.hosts)
    yield from _check_unique_hosts(config.hosts)
    yield from _check_hosts_gpus(config.hosts)
    yield from _check_ssh_keys(config.hosts)
    yield from _check_subnet(config)
    yield from _check_ports(config)
    yield from _check_model_source(config)
    yield from _check_driver_install(config)
    yield from _check_parallel_layout(config)
    yield from _check_layer_partition(config)


def model_layer_count(config: StackConfig) -> int | None:
    """`num_hidden_layers` from the model's config.json, when it is on the controller."""
    file = config.model.config_file
    return int(read_config_json(file)["num_hidden_layers"]) if file is not None and file.is_file() else None


def _plaintext_secrets(raw: dict[str, Any], secret_keys: set[str]) -> Iterator[str]:
    for key in SECRET_KEYS:
        if key in raw and key not in secret_keys:
            yield (
                f"{key}: given in plain text; store it encrypted with "
                f"`pulumi config set --secret {key} <value>` (or remove it to have one generated)"
            )


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
    driver = raw.get("nvidia_driver_install")
    if isinstance(driver, dict) and "signing_key_file" in driver:
        driver["signing_key_file"] = absolute(driver["signing_key_file"])
    model = raw.get("model")
    if isinstance(model, dict):
        for key in ("path", "config_json"):
            if key in model:
                model[key] = absolute(model[key])
    return raw


def _describe(error: dict[str, Any], hosts_source: str) -> str:
    location = list(error["loc"])
    key = _dotted(location)
    if location and location[0] == "hosts":
        key = hosts_source + key[len("hosts"):]
    if error["type"] == "extra_forbidden":
        suggestion = _suggest(location)
        return f"{key}: unknown key{suggestion}; remove it or fix its spelling"
    if error["type"] == "literal_error":
        choices = error["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"{key}: unknown value {error['input']!r}; use one of: {choices}"
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
        counts = Counter(str(getattr(host, field)) for host in hosts)
        for value, count in counts.items():
            if count > 1:
                yield f"hosts[].{field}", f"{value} is used by {count} hosts; each host needs its own {field}"


def _check_hosts_gpus(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if host.accelerator == "nvidia" and not host.gpus:
            yield f"hosts[{index}].gpus", f"{host.name} is `nvidia` but lists no GPUs; add `gpus: [{{memory_gb: 24}}]`"
        if host.accelerator == "cpu" and host.gpus:
            yield f"hosts[{index}].gpus", f"{host.name} is `cpu` but lists GPUs; remove them or set `accelerator: nvidia`"


def _check_ssh_keys(hosts: list[HostConfig]) -> Iterator[tuple[str, str]]:
    for index, host in enumerate(hosts):
        if not host.ssh.key_file.is_file():
            yield (
                f"hosts[{index}].ssh.key_file",
                f"{host.ssh.key_file} does not exist; point it at the private key that logs in to {host.name}",
            )


def _check_subnet(config: StackConfig) -> Iterator[tuple[str, str]]:
    subnet = config.network.subnet
    for index, host in enumerate(config.hosts):
        if subnet is not None and host.address not in subnet:
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
