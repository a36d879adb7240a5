"""Which releases' .debs the controller fetches, what each node's system-packages step asks for, the
model's folder per revision and the stack's claim on its hosts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from artifacts.debs import DebFile, DebFiles
from deploys.specs import MODEL_DIRECTORY, PlatformSpec
from stack.config import HostConfig, ModelConfig, NetworkConfig
from stack.node_steps import (
    SYSTEM_PACKAGES,
    NodeInputs,
    model_folder,
    platform_spec,
    pushed_release,
    pushed_releases,
    system_packages_spec,
)


def host(name: str, os: str | None, route_out: bool) -> HostConfig:
    return HostConfig(name=name, address="10.0.0.1", ssh={"key_file": "/dev/null"}, role="worker", accelerator="cpu",
                      os=os, route_out=route_out)  # fmt: skip


def test_debs_are_fetched_once_per_release_of_hosts_without_a_route_out():
    hosts = [
        host("a", "debian-13", route_out=False),
        host("b", "debian-12", route_out=False),
        host("c", "debian-13", route_out=False),
        host("d", "ubuntu-24.04", route_out=True),
        host("e", None, route_out=True),
    ]
    assert pushed_releases(hosts) == ["debian-12", "debian-13"]
    assert [pushed_release(h) for h in hosts] == ["debian-13", "debian-12", "debian-13", None, None]
    # Every host with a route out: nothing to fetch, the controller never calls apt.
    assert pushed_releases(hosts[3:]) == []


def test_system_packages_are_pushed_debs_of_the_release_or_names_for_the_nodes_sources():
    debs = DebFiles(
        release="debian-13", debs_dir="/c/.cache/debs/debian-13/pool", packages=SYSTEM_PACKAGES,
        debs={"nftables": DebFile(file="nftables_1.1.3-1_amd64.deb", version="1.1.3-1", depends=("libnftables1",))},
    )  # fmt: skip
    pushed = system_packages_spec(NodeInputs(host("a", "debian-13", route_out=False), NetworkConfig(), "m", debs=debs))
    assert (pushed.release, pushed.debs_dir, list(pushed.debs)) == ("debian-13", debs.debs_dir, ["nftables"])
    pulled = system_packages_spec(NodeInputs(host("b", "debian-13", route_out=True), NetworkConfig(), "m", debs=debs))
    assert pulled.model_dump() == {"packages": SYSTEM_PACKAGES, "release": None, "debs_dir": None, "debs": None, "proxy": None}


def test_a_model_revision_has_its_own_folder_named_at_preview(tmp_path):
    """A new revision lands beside the one serving (which keeps serving until the new release is
    verified); the same source always names the same folder."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    folder = model_folder(ModelConfig(path=model, served_name="tiny"))
    assert folder == model_folder(ModelConfig(path=model, served_name="tiny"))
    assert folder.startswith("tiny-") and MODEL_DIRECTORY.match(folder)
    (model / "config.json").write_text('{"revision": 2}')
    assert model_folder(ModelConfig(path=model, served_name="tiny")) != folder
    pinned = model_folder(ModelConfig(huggingface=f"org/m@{'a' * 40}", served_name="m"))
    assert pinned != model_folder(ModelConfig(huggingface=f"org/m@{'b' * 40}", served_name="m"))
    longest = model_folder(ModelConfig(huggingface=f"org/m@{'a' * 40}", served_name="m" * 128))
    assert MODEL_DIRECTORY.match(longest)


def test_the_os_preflight_claims_the_host_for_the_stack():
    claimed = platform_spec(NodeInputs(host("a", None, route_out=True), NetworkConfig(), "m", owner="ray-vllm-stack/prod"))
    assert claimed.owner == "ray-vllm-stack/prod"
    assert platform_spec(NodeInputs(host("a", None, route_out=True), NetworkConfig(), "m")).owner is None
    with pytest.raises(ValidationError):  # it reaches a shell: only the strict pattern passes
        PlatformSpec(owner="p/s; rm -rf /")
