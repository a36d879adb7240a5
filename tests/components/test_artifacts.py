"""Controller-side caches without the network: dependency parsing, model manifests, the HF call,
and the cache providers' diff/damage/purge decisions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from artifacts import manifest as manifests
from artifacts.debs import Mirrors, closure, parse_depends
from artifacts.paths import REPO_ROOT
from artifacts.weights import hf_snapshot_dir, prepare_model, source_stamp
from components.artifacts import DebsProvider, ModelProvider, PythonProvider, WheelhouseProvider
from tests.support.fake_hub import FakeHub

APT_CACHE_DEPENDS = """\
python3-venv
  Depends: python3.11-venv
  Depends: python3
python3.11-venv
  Depends: <python3.11-distutils>
    python3-distutils
python3.11
 |Depends: media-types
  Depends: mime-support
python3
  PreDepends: python3-minimal
python3-distutils
  Depends: <python3:any>
    python3
libc6
  Depends: libgcc-s1
"""


def test_apt_dependencies_take_first_alternatives_and_providers():
    assert parse_depends(APT_CACHE_DEPENDS) == {
        "python3-venv": ["python3.11-venv", "python3"],
        "python3.11-venv": ["python3-distutils"],
        "python3.11": ["media-types"],
        "python3": ["python3-minimal"],
        "python3-distutils": ["python3"],
        "libc6": ["libgcc-s1"],
    }


def test_closure_skips_packages_every_system_has():
    graph = {"jq": ["libjq1", "libc6"], "libjq1": ["libonig5", "libc6"], "libc6": ["libgcc-s1"]}
    assert closure(["jq"], graph, required={"libc6"}) == ["jq", "libjq1", "libonig5"]
    assert closure(["libc6"], graph, required={"libc6"}) == ["libc6", "libgcc-s1"]  # asked for by name: kept


def test_local_model_manifest_ignores_hidden_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"\0" * 10)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "meta").write_text("x")
    files = prepare_model(str(tmp_path), None)
    assert sorted(manifests.parse(files.manifest)) == ["config.json", "sub/w.bin"]
    assert files.total_bytes == 12 and files.downloaded_bytes == 0
    assert files.manifest_digest == manifests.manifest_digest(manifests.parse(files.manifest))


def test_local_model_stamp_changes_when_a_file_does(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = source_stamp(str(tmp_path), None)
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert source_stamp(str(tmp_path), None) != before
    assert source_stamp(None, "org/m@abc123") == "org/m@abc123"


@pytest.fixture
def hub():
    hub = FakeHub("org/tiny", {"config.json": b'{"num_hidden_layers": 2}', "model.safetensors": b"w" * 4096})
    yield hub
    hub.close()


def test_hugging_face_model_is_fetched_once_with_the_token(hub, tmp_path):
    first = prepare_model(None, "org/tiny@c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff", token="hf_secret", endpoint=hub.url, cache=tmp_path)
    assert hub.downloads() == ["config.json", "model.safetensors"]
    assert {auth for _, _, auth in hub.requests} == {"Bearer hf_secret"}
    assert first.local_path == str(hf_snapshot_dir("org/tiny@c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff", tmp_path)) == str(tmp_path / "org--tiny" / "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff")
    assert first.downloaded_bytes == first.total_bytes == 4096 + 24
    again = prepare_model(None, "org/tiny@c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff", token="hf_secret", endpoint=hub.url, cache=tmp_path)
    assert hub.downloads() == ["config.json", "model.safetensors"] and again.downloaded_bytes == 0
    assert again.manifest_digest == first.manifest_digest


def test_hf_endpoint_from_the_environment_is_honoured(hub, tmp_path):
    """huggingface_hub reads HF_ENDPOINT when it is imported, as in a fresh provider process."""
    script = (
        "import sys; from pathlib import Path; from artifacts.weights import prepare_model; "
        "print(prepare_model(None, 'org/tiny@c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff', cache=Path(sys.argv[1])).downloaded_bytes)"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4120" and hub.downloads() == ["config.json", "model.safetensors"]


def test_empty_model_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no files"):
        prepare_model(str(tmp_path), None)


def test_wheelhouse_damage_lists_missing_wheels_and_diffs(tmp_path):
    (tmp_path / "a.whl").write_text("a")
    outs = {"flavor": "cpu", "source": "s", "purge_cache": False, "path": str(tmp_path),
            "manifest": manifests.render({"a.whl": "0" * 64, "b.whl": "1" * 64})}  # fmt: skip
    provider = WheelhouseProvider()
    assert provider.damage(outs) == ["b.whl"]
    news = {"flavor": "cpu", "source": "s", "purge_cache": False}
    assert provider.diff("cpu-k", {**outs, "damage": []}, news).changes is False
    assert provider.diff("cpu-k", {**outs, "damage": ["b.whl"]}, news).changes is True
    assert provider.diff("cpu-k", {**outs, "damage": []}, {**news, "source": "s2"}).changes is True


def test_destroy_keeps_caches_unless_asked(tmp_path):
    (tmp_path / "x.deb").write_text("x")
    outs = {"debs_dir": str(tmp_path), "debs": {"x": {"file": "x.deb", "version": "1", "depends": []}}}
    DebsProvider().delete("debs", {**outs, "purge_cache": False})
    assert (tmp_path / "x.deb").exists()
    DebsProvider().delete("debs", {**outs, "purge_cache": True})
    assert not (tmp_path / "x.deb").exists()


def test_a_local_model_folder_is_never_purged(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    ModelProvider().delete("m", {"local_path": str(tmp_path), "huggingface": None, "purge_cache": True})
    assert (tmp_path / "config.json").exists()


def test_model_damage_when_local_files_change(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    outs = {"local_path": str(tmp_path), "files_stamp": source_stamp(str(tmp_path), None)}
    assert ModelProvider().damage(outs) == []
    (tmp_path / "config.json").write_text("{ }")
    assert ModelProvider().damage(outs) == [f"{tmp_path} changed"]


def test_debs_are_fetched_again_when_their_release_or_mirror_changes():
    olds = {"packages": ["libnuma1"], "release": "debian-12", "mirrors": Mirrors().model_dump(), "purge_cache": False,
            "debs_dir": "/c", "debs": {}, "damage": []}  # fmt: skip
    news = {key: olds[key] for key in ("packages", "release", "mirrors", "purge_cache")}
    assert DebsProvider().diff("debs-debian-12", olds, news).changes is False
    moved = Mirrors(debian_mirror="http://mirror.lan/debian").model_dump()
    assert DebsProvider().diff("debs-debian-12", olds, {**news, "mirrors": moved}).changes is True
    assert DebsProvider().diff("debs-debian-12", olds, {**news, "release": "debian-13"}).changes is True


def test_the_interpreter_cache_diffs_on_a_new_recipe_and_a_purge_removes_its_build(tmp_path):
    tree = tmp_path / "3.11.2-k" / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "python3.11").write_text("elf")
    (tmp_path / "3.11.2-k" / "build.json").write_text("{}")
    props = {"prefix": "/opt/ray-vllm-stack/python/3.11.2", "source": "u", "sha256": "a" * 64, "build_key": "3.11.2-k"}
    outs = {**props, "purge_cache": False, "path": str(tree),
            "manifest": manifests.render({"bin/python3.11": "0" * 64, "lib/libssl.so.3": "1" * 64})}  # fmt: skip
    provider = PythonProvider()
    assert provider.damage(outs) == ["lib/libssl.so.3"]
    news = {**props, "purge_cache": False}
    assert provider.diff("3.11.2-k", {**outs, "damage": []}, news).changes is False
    assert provider.diff("3.11.2-k", {**outs, "damage": []}, {**news, "build_key": "3.11.2-j"}).changes is True
    provider.delete("3.11.2-k", outs)
    assert (tree / "bin" / "python3.11").exists()
    provider.delete("3.11.2-k", {**outs, "purge_cache": True})
    assert not (tmp_path / "3.11.2-k").exists() and tmp_path.exists()
