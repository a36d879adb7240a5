"""The runner's per-host reporting, against addresses that refuse connections (no lab needed)."""

import subprocess

from deploys import node, observe
from deploys.runner import SshTarget, run_deploy
from deploys.specs import PythonRuntimeSpec, TreeSpec

SPEC = PythonRuntimeSpec(
    version="3.11.2",
    glibc_floor="2.34",
    tree=TreeSpec(
        source="/c/python", destination="/opt/ray-vllm-stack/python/3.11.2", manifest="", verify_content=True
    ),
)


def test_unreachable_host_gets_an_error_naming_it(tmp_path):
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts = [
        SshTarget(name=name, address="127.0.0.1", user="root", port=port, key_file=str(key))
        for name, port in (("ghost1", 1), ("ghost2", 2))
    ]
    results = run_deploy(hosts, node.python_runtime, observe=observe.python_runtime, spec=SPEC)
    for name, port in (("ghost1", 1), ("ghost2", 2)):
        result = results[name]
        assert result.error.startswith(f"{name}: cannot connect over SSH to root@127.0.0.1:{port}: ")
        assert not result.reachable and not result.changed and result.facts == {}
