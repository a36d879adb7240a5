"""Hostile or mistyped configs: each fails validation with the config key named, before any host
changes (validation runs before a resource is declared). Every case has its positive control: the
same config with the field left valid loads, so a case cannot pass because something else broke."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from artifacts.paths import REPO_ROOT
from stack.validation import ConfigError, load_stack_config

Edit = Callable[[dict], None]


def _set(path: str, value) -> Edit:
    """An edit that sets a dotted key (`hosts.0.ssh.user`) of the raw config."""

    def edit(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return edit


HEX = "0123456789abcdef0123456789abcdef01234567"
HOSTILE: list[tuple[str, Edit, str]] = [
    # model.served_name becomes a directory under the models root and a unit's text.
    ("served-name-traversal", _set("model.served_name", "../../../../opt"), "model.served_name"),
    ("served-name-dotdot", _set("model.served_name", ".."), "model.served_name"),
    ("served-name-dot", _set("model.served_name", "."), "model.served_name"),
    ("served-name-empty", _set("model.served_name", ""), "model.served_name"),
    ("served-name-slash", _set("model.served_name", "a/b"), "model.served_name"),
    ("served-name-quote", _set("model.served_name", "tiny'x"), "model.served_name"),
    ("served-name-subshell", _set("model.served_name", "$(touch /tmp/pwned)"), "model.served_name"),
    ("served-name-backtick", _set("model.served_name", "`id`"), "model.served_name"),
    ("served-name-newline-directive", _set("model.served_name", "tiny\nExecStartPre=/bin/sh -c id"), "model.served_name"),
    ("served-name-space", _set("model.served_name", "tiny model"), "model.served_name"),
    ("served-name-leading-dash", _set("model.served_name", "-rf"), "model.served_name"),
    # Managed runtime variables: silently turning Ray auth off or moving traffic.
    ("env-ray-auth-disabled", _set("network.env", {"RAY_AUTH_MODE": "disabled"}), "network.env.RAY_AUTH_MODE"),
    ("env-ray-auth-any", _set("network.env", {"RAY_AUTH_FOO": "x"}), "network.env.RAY_AUTH_FOO"),
    ("env-ray-token-path", _set("network.env", {"RAY_AUTH_TOKEN_PATH": "/tmp/t"}), "network.env.RAY_AUTH_TOKEN_PATH"),
    ("env-host-ip", _set("network.env", {"VLLM_HOST_IP": "0.0.0.0"}), "network.env.VLLM_HOST_IP"),
    ("env-api-key", _set("network.env", {"VLLM_API_KEY": "abc"}), "network.env.VLLM_API_KEY"),
    ("env-gloo-ifname", _set("network.env", {"GLOO_SOCKET_IFNAME": "lo"}), "network.env.GLOO_SOCKET_IFNAME"),
    ("env-vllm-port", _set("network.env", {"VLLM_PORT": "1"}), "network.env.VLLM_PORT"),
    ("env-key-injection", _set("network.env", {"A=B\nC": "1"}), "network.env"),
    ("env-key-not-a-name", _set("network.env", {"1BAD": "x"}), "network.env"),
    ("env-value-subshell", _set("network.env", {"MY_VAR": "$(reboot)"}), "network.env.MY_VAR"),
    ("env-value-space-quote", _set("network.env", {"MY_VAR": 'a" b'}), "network.env.MY_VAR"),
    # Managed vLLM flags in extra_args: bind, key in argv, model swap.
    ("flag-host-all", _set("vllm.extra_args", ["--host", "0.0.0.0"]), "vllm.extra_args[0]"),
    ("flag-host-equals", _set("vllm.extra_args", ["--host=0.0.0.0"]), "vllm.extra_args[0]"),
    ("flag-host-abbreviated", _set("vllm.extra_args", ["--hos=0.0.0.0"]), "vllm.extra_args[0]"),
    ("flag-api-key", _set("vllm.extra_args", ["--api-key=abc"]), "vllm.extra_args[0]"),
    ("flag-api-key-underscore", _set("vllm.extra_args", ["--api_key=abc"]), "vllm.extra_args[0]"),
    ("flag-port", _set("vllm.extra_args", ["--port=9000"]), "vllm.extra_args[0]"),
    ("flag-model", _set("vllm.extra_args", ["--model=/etc"]), "vllm.extra_args[0]"),
    ("flag-served-name", _set("vllm.extra_args", ["--served-model-name=x"]), "vllm.extra_args[0]"),
    ("flag-pp-short", _set("vllm.extra_args", ["-pp", "4"]), "vllm.extra_args[0]"),
    ("flag-tp-size", _set("vllm.extra_args", ["--tensor-parallel-size=2"]), "vllm.extra_args[0]"),
    ("flag-executor", _set("vllm.extra_args", ["--distributed-executor-backend=mp"]), "vllm.extra_args[0]"),
    ("flag-ssl-key", _set("vllm.extra_args", ["--ssl-keyfile=/etc/shadow"]), "vllm.extra_args[0]"),
    ("arg-with-space", _set("vllm.extra_args", ["--chat-template=a b"]), "vllm.extra_args[0]"),
    ("arg-with-subshell", _set("vllm.extra_args", ["$(id)"]), "vllm.extra_args[0]"),
    ("arg-with-newline", _set("vllm.extra_args", ["--x\nExecStartPre=/bin/id"]), "vllm.extra_args[0]"),
    # SSH: an option instead of a user, unchecked host keys on a real host.
    ("ssh-user-option", _set("hosts.0.ssh.user", "-oProxyCommand=id"), "hosts[0].ssh.user"),
    ("ssh-user-at", _set("hosts.0.ssh.user", "root@evil"), "hosts[0].ssh.user"),
    ("ssh-user-space", _set("hosts.0.ssh.user", "a b"), "hosts[0].ssh.user"),
    ("host-keys-ignore-real-host", _set("hosts.1.ssh.host_keys", "ignore"), "hosts[1].ssh.host_keys"),
    ("interface-slash", _set("network.interface", "../eth0"), "network.interface"),
    ("interface-too-long", _set("network.interface", "a" * 16), "network.interface"),
    ("interface-subshell", _set("network.interface", "$(id)"), "network.interface"),
    # Weights that are not pinned, URLs that carry shell.
    ("hf-branch", _set("model", {"huggingface": "Qwen/Qwen2-0.5B@main", "served_name": "q"}), "model.huggingface"),
    ("hf-tag", _set("model", {"huggingface": "Qwen/Qwen2-0.5B@v1.0", "served_name": "q"}), "model.huggingface"),
    ("hf-short-hash", _set("model", {"huggingface": "Qwen/Qwen2-0.5B@abc1234", "served_name": "q"}), "model.huggingface"),
    ("hf-repo-traversal", _set("model", {"huggingface": f"../x@{HEX}", "served_name": "q"}), "model.huggingface"),
    ("hf-endpoint-shell", _set("model.hf_endpoint", "https://x;id"), "model.hf_endpoint"),
    ("gpu-name-newline", _set("hosts.0.gpus", [{"name": "A\nB", "memory_gb": 1}]), "hosts[0].gpus[0].name"),
    # Services as root, weak or odd secrets.
    ("service-user-root", _set("security.service_user", "root"), "security.service_user"),
    ("service-user-option", _set("security.service_user", "-x"), "security.service_user"),
    ("api-key-short", _set("api_key", "short"), "api_key"),
    ("api-key-shell", _set("api_key", "abcdefghijklmnop;$(id)"), "api_key"),
    ("ray-token-space", _set("ray_token", "abcdefgh ijklmnopq"), "ray_token"),
    ("tls-files-missing", _set("security.tls", "files"), "security.tls_cert_file"),
]

SECRET_KEYS = {"api_key", "ray_token", "hf_token"}


def _problems(raw: dict) -> list[str]:
    try:
        load_stack_config(raw, SECRET_KEYS, REPO_ROOT)
    except ConfigError as error:
        return error.problems
    return []


def test_the_corpus_is_large_enough():
    assert len(HOSTILE) >= 30
    assert len({name for name, _, _ in HOSTILE}) == len(HOSTILE)


def test_the_unedited_config_loads(raw_config):
    """The positive control for every case below."""
    assert _problems(raw_config) == []


@pytest.mark.parametrize(("edit", "key"), [(edit, key) for _, edit, key in HOSTILE], ids=[name for name, _, _ in HOSTILE])
def test_hostile_value_is_refused_naming_its_key(raw_config, edit: Edit, key: str):
    hostile = copy.deepcopy(raw_config)
    edit(hostile)
    problems = _problems(hostile)
    assert problems, "accepted"
    assert sum(line.startswith(f"{key}:") for line in problems) == 1, problems
    if key in SECRET_KEYS:
        secret = hostile[key]
        assert not any(secret in line for line in problems), "a secret was echoed"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (_set("network.env", {"MY_VAR": "a.b:c,d=e"}), "network.env"),
        (_set("vllm.extra_args", ["--max-num-seqs=8", "--hostname-typo-free-flag=1"]), "vllm.extra_args"),
        (_set("vllm.extra_args", ["--quantization-param-path=/x"]), "vllm.extra_args"),
        (_set("model.served_name", "Qwen2.5-32B_awq"), "model.served_name"),
        (_set("hosts.0.ssh.user", "ubuntu"), "hosts[0].ssh.user"),
        (_set("network.interface", "enp3s0.100"), "network.interface"),
        (_set("api_key", "sk-0123456789abcdef"), "api_key"),
        (_set("hosts.1.ssh.host_keys", "ignore"), "with the explicit opt-in"),
    ],
    ids=["env", "extra-args", "longer-flag", "served-name", "ssh-user", "vlan-interface", "api-key", "opt-in"],
)
def test_valid_values_of_the_same_fields_load(raw_config, edit: Edit, key: str):
    edit(raw_config)
    if key == "with the explicit opt-in":
        raw_config["security"] = {"allow_unverified_host_keys": True}
    assert _problems(raw_config) == [], key


def test_lab_hosts_may_skip_host_keys(raw_config):
    raw_config["hosts"][1]["ssh"]["host_keys"] = "ignore"
    assert _problems(raw_config)
    raw_config["hosts"][1]["lab"] = True
    assert _problems(raw_config) == []


def test_a_mistyped_secret_is_named_not_shown(raw_config):
    raw_config["api_key"] = {"value": "typed-secret-0123456789"}
    problems = _problems(raw_config)
    assert problems and problems[0].startswith("api_key:")
    assert not any("typed-secret" in line for line in problems)
