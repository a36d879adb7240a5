"""Read the `ray-vllm-stack:` config of the running stack into a validated `StackConfig`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import StackConfig
from components.validation import CONFIG_NAMESPACE, ConfigError, load_stack_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
        return load_stack_config(raw, secret_keys, PROJECT_ROOT)


@contextmanager
def stop_on_config_error() -> Iterator[None]:
    """Report a `ConfigError` as Pulumi's clean one-message failure, with no traceback."""
    try:
        yield
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None


def _decode(value: str):
    """Structured config values arrive as JSON text, plain ones as the bare string."""
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    return decoded if isinstance(decoded, (dict, list)) else value
