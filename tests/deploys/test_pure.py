"""Pure helpers of the deploys: manifests, the runtime environment file, dependency closure."""

import pytest
from pydantic import ValidationError
from pyinfra.api import OperationError

from artifacts import manifest as manifests
from deploys.operations import freeze_names, missing_closure
from deploys.runtime_env import parse_env_file, render_env_file, runtime_env
from deploys.specs import DebFile, ModelWeightsSpec, NvidiaDriverInstall, RuntimeEnvSpec, SystemPackagesSpec, TreeSpec


def test_manifest_round_trip_and_digest(tmp_path):
    (tmp_path / "a b").write_text("1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c").write_text("2")
    (tmp_path / "MANIFEST.sha256").write_text("ignored")
    manifest = manifests.build_manifest(tmp_path)
    assert sorted(manifest) == ["a b", "d/c"]
    assert manifests.parse(manifests.render(manifest)) == manifest
    tree = TreeSpec(source=str(tmp_path), destination="/x", manifest=manifests.render(manifest), verify_content=True)
    assert tree.entries == manifest and tree.digest == manifests.manifest_digest(manifest)


def test_cached_manifest_rehashes_only_files_whose_size_or_time_changed(tmp_path, monkeypatch):
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    tree.mkdir()
    (tree / "kept").write_text("1")
    (tree / "edited").write_text("2")
    first = manifests.build_manifest(tree, cache)
    assert first == manifests.build_manifest(tree)
    (tree / "edited").write_text("22")
    hashed = []
    monkeypatch.setattr(manifests, "file_sha256", lambda path: hashed.append(path.name) or f"digest of {path.name}")
    second = manifests.build_manifest(tree, cache)
    assert hashed == ["edited"]
    assert second == {"kept": first["kept"], "edited": "digest of edited"}


def test_env_file_round_trip():
    env = runtime_env(RuntimeEnvSpec(address="10.0.0.2", overrides={"X": 'a "b"'}), [{"interface": "eth1", "address": "10.0.0.2"}])
    assert env == {"GLOO_SOCKET_IFNAME": "eth1", "NCCL_SOCKET_IFNAME": "eth1", "VLLM_HOST_IP": "10.0.0.2",
                   "NCCL_IB_DISABLE": "1", "X": 'a "b"'}  # fmt: skip
    assert parse_env_file(render_env_file(env).splitlines()) == env


def test_missing_closure_walks_only_missing_dependencies():
    debs = {"a": DebFile(file="a.deb", version="1", depends=("b", "c")), "b": DebFile(file="b.deb", version="1")}
    assert missing_closure(["a"], debs, installed={"c": "1"}) == ["a", "b"]
    with pytest.raises(OperationError, match="system package c is missing"):
        missing_closure(["a"], debs, installed={})


def test_freeze_names_are_normalized():
    freeze = ["Flask_Cors==4.0", "vllm_ray_cpu @ file:///w/p.whl", "-e git+x", "zope.interface==6"]
    assert freeze_names(freeze) == {"flask-cors", "vllm-ray-cpu", "zope-interface"}


def test_driver_packages_must_be_pinned():
    with pytest.raises(ValueError, match="pin every package as name=version: cuda-drivers"):
        NvidiaDriverInstall(url="http://m", signing_key="k", packages=("cuda-drivers",))


@pytest.mark.parametrize("destination", ["/", "/var/lib/ray-vllm-stack/models", "/var/lib/ray-vllm-stack/models/a/b",
                                         "/var/lib/ray-vllm-stack/models/..", "/opt/tiny"])
def test_model_weights_go_to_one_folder_of_the_models_root(destination):
    def spec(path: str) -> ModelWeightsSpec:
        return ModelWeightsSpec(tree=TreeSpec(source="/src", destination=path, manifest="", verify_content=True))

    assert spec("/var/lib/ray-vllm-stack/models/tiny").tree.destination.endswith("/tiny")
    with pytest.raises(ValueError, match="model weights go to"):
        spec(destination)


def test_pushed_debs_come_with_their_release_and_folder():
    with pytest.raises(ValidationError, match="release, debs_dir and debs go together"):
        SystemPackagesSpec(packages=("jq",), debs={})
    with pytest.raises(ValidationError, match="release, debs_dir and debs go together"):
        SystemPackagesSpec(packages=("jq",), release="debian-12", debs={})
    # Positive controls: all three (pushed), or none (the node's own sources).
    assert SystemPackagesSpec(packages=("jq",), release="debian-12", debs_dir="/c", debs={}).release == "debian-12"
    assert SystemPackagesSpec(packages=("jq",)).debs is None
