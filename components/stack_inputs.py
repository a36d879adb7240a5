"""The program's side of the stack logic: read the `ray-vllm-stack:` config of the running stack
into a validated `StackConfig`, and turn the stack's own errors into Pulumi's clean failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pulumi
from pulumi.runtime import config as runtime_config

from artifacts.paths import REPO_ROOT
from stack.config import StackConfig
from stack.fingerprint import NodesDiffer, require_identical
from stack.validation import CONFIG_NAMESPACE, ConfigError, load_stack_config, unverified_host_keys


def read_stack_config() -> StackConfig:
    """Validate once at the entry point; on bad input fail the run before any resource is declared."""
    prefix = f"{CONFIG_NAMESPACE}:"
    raw, secret_keys = {}, set()
    for key, value in runtime_config.get_config_env().items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            raw[name] = _decode(value)
            if runtime_config.is_config_secret(key):
                secret_keys.add(name)
    with stop_on_config_error():
        config = load_stack_config(raw, secret_keys, REPO_ROOT)
    for name in unverified_host_keys(config):
        pulumi.log.warn(f"{name}: ssh.host_keys is `ignore`: its SSH host key is not checked")
    return config


@contextmanager
def stop_on_config_error() -> Iterator[None]:
    """Report a `ConfigError` (or nodes that differ) as Pulumi's clean one-message failure, with no traceback."""
    try:
        yield
    except (ConfigError, NodesDiffer) as error:
        raise pulumi.RunError(str(error)) from None


def identical_nodes(fingerprints: dict[str, dict]) -> dict[str, dict]:
    """The nodes' fingerprints, once every node has the same (else the run stops, naming them)."""
    with stop_on_config_error():
        return require_identical(fingerprints)


def _decode(value: str):
    """Structured config values arrive as JSON text, plain ones as the bare string."""
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    return decoded if isinstance(decoded, (dict, list)) else value
