"""What the controller fetches once per stack, as Pulumi resources: the nodes' interpreter, the
wheelhouse of a node flavor, the model weights, and the Debian packages nodes may lack.

Each provider calls a plain function (`artifacts.python_build`, `artifacts.wheels`,
`artifacts.weights`, `artifacts.debs`) on create/update; `read` (refresh) checks the cache is still whole; `delete`
keeps the cache unless `purge_cache` was set when it was last applied (`destroy` keeps caches).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult
from pydantic import BaseModel

from artifacts.debs import DebFiles, Mirrors, prepare_debs
from artifacts.python_build import BuildRecipe, PythonBuild, prepare_python
from artifacts.weights import ModelFiles, prepare_model, source_stamp
from artifacts.wheels import WheelhouseFiles, prepare_wheelhouse, source_digest


class CacheProvider(ResourceProvider):
    """Shared shape of the caches; subclasses say how to fill, check and purge theirs."""

    serialize_as_secret_always = False
    inputs: tuple[str, ...] = ()

    def fill(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def damage(self, outs: dict[str, Any]) -> list[str]:
        """What is missing or altered in the cache described by `outs`."""
        raise NotImplementedError

    def purge(self, outs: dict[str, Any]) -> None:
        raise NotImplementedError

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = [key for key in (*self.inputs, "purge_cache") if olds.get(key) != news.get(key)]
        if olds.get("damage"):
            changes.append("damage")
        return DiffResult(changes=bool(changes), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._fill(props)
        return CreateResult(outs["cache_id"], outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("damage"):
            self.purge(olds)  # refill from scratch: a partial cache would be taken as whole
        return UpdateResult(self._fill(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {**props, "damage": self.damage(props)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("purge_cache"):
            self.purge(props)

    def _fill(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, **self.fill(props), "damage": []}


class TreeCacheProvider(CacheProvider):
    """A cache that is one folder described by a manifest (`path`, `manifest` outputs)."""

    def damage(self, outs):
        from artifacts.manifest import parse

        root = Path(outs["path"])
        return sorted(name for name in parse(outs["manifest"]) if not (root / name).is_file())


class WheelhouseProvider(TreeCacheProvider):
    inputs = ("flavor", "source")

    def fill(self, props):
        files = prepare_wheelhouse(props["flavor"])
        return {**files.model_dump(mode="json"), "cache_id": files.key}

    def purge(self, outs):
        shutil.rmtree(outs["path"], ignore_errors=True)


class PythonProvider(TreeCacheProvider):
    inputs = ("prefix", "source", "sha256", "build_key")

    def fill(self, props):
        built = prepare_python(props["prefix"], props["source"], props["sha256"])
        return {**built.model_dump(mode="json"), "cache_id": built.key}

    def purge(self, outs):
        shutil.rmtree(Path(outs["path"]).parent, ignore_errors=True)  # the key's folder: tree + build record


class ModelProvider(CacheProvider):
    inputs = ("path", "huggingface", "endpoint", "hf_token", "source")

    def fill(self, props):
        files = prepare_model(props.get("path"), props.get("huggingface"), props.get("hf_token"), props.get("endpoint"))
        stamp = source_stamp(files.local_path, None)
        return {**files.model_dump(mode="json"), "files_stamp": stamp, "cache_id": props.get("huggingface") or files.local_path}

    def damage(self, outs):
        return [] if source_stamp(outs["local_path"], None) == outs["files_stamp"] else [f"{outs['local_path']} changed"]

    def purge(self, outs):
        if outs.get("huggingface"):  # a local model folder is the user's, never ours to delete
            shutil.rmtree(outs["local_path"], ignore_errors=True)


class DebsProvider(CacheProvider):
    inputs = ("packages", "release", "mirrors")

    def fill(self, props):
        files = prepare_debs(list(props["packages"]), props["release"], Mirrors.model_validate(props["mirrors"]))
        return {**files.model_dump(mode="json"), "cache_id": f"debs-{files.release}"}

    def damage(self, outs):
        root = Path(outs["debs_dir"])
        return sorted(deb["file"] for deb in outs["debs"].values() if not (root / deb["file"]).is_file())

    def purge(self, outs):
        for deb in outs["debs"].values():
            (Path(outs["debs_dir"]) / deb["file"]).unlink(missing_ok=True)


_CACHE_OUTPUTS = ("damage", "cache_id")


class CacheResource(pulumi.dynamic.Resource):
    """A cache whose outputs are the fields of its `files_type` (and the cache's own bookkeeping)."""

    files_type: type[BaseModel]

    def files(self) -> pulumi.Output:
        """The outputs as the `files_type` value the provider filled: what provisioning reads."""
        fields = {name: getattr(self, name) for name in self.files_type.model_fields}
        return pulumi.Output.all(**fields).apply(
            lambda values: self.files_type.model_validate({key: value for key, value in values.items() if value is not None})
        )


class Wheelhouse(CacheResource, module="artifacts", name="Wheelhouse"):
    """A node flavor's wheels, downloaded once into `.cache/wheelhouse/<flavor>-<lock hash>/`."""

    files_type = WheelhouseFiles

    def __init__(self, name: str, flavor: str, purge_cache: bool = False, opts: pulumi.ResourceOptions | None = None):
        self.accelerator = flavor
        """The hosts it serves (`cpu` or `nvidia`); plain, known at preview (`flavor` is an Output)."""
        props = {"flavor": flavor, "source": source_digest(flavor), "purge_cache": purge_cache}
        outputs = (*WheelhouseFiles.model_fields, *_CACHE_OUTPUTS)
        super().__init__(WheelhouseProvider(), name, {**props, **dict.fromkeys(outputs)}, opts)


class ModelArtifact(CacheResource, module="artifacts", name="ModelArtifact"):
    """The model's weights on the controller with their sha256 manifest."""

    files_type = ModelFiles

    def __init__(
        self,
        name: str,
        path: str | None = None,
        huggingface: str | None = None,
        hf_token: pulumi.Input[str] | None = None,
        endpoint: str | None = None,
        purge_cache: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "path": path,
            "huggingface": huggingface,
            "endpoint": endpoint,
            "hf_token": pulumi.Output.secret(hf_token) if hf_token is not None else None,
            "source": source_stamp(path, huggingface),
            "purge_cache": purge_cache,
        }
        outputs = (*ModelFiles.model_fields, "files_stamp", *_CACHE_OUTPUTS)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["hf_token"]))
        super().__init__(ModelProvider(), name, {**props, **dict.fromkeys(outputs)}, opts)


class DebPackages(CacheResource, module="artifacts", name="DebPackages"):
    """The packages (and their dependency closure) nodes of one release may lack, as .debs in
    `.cache/debs/<release>/pool/`; made only for releases of hosts without a route out."""

    files_type = DebFiles

    def __init__(
        self,
        name: str,
        packages: list[str],
        release: str,
        mirrors: Mirrors,
        purge_cache: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        self.node_release = release
        """The release its .debs are for; plain, known at preview (`release` is an Output)."""
        # Only the mirrors: a config subclass's other fields (a proxy) must not diff the .debs.
        mirrors = {field: getattr(mirrors, field) for field in Mirrors.model_fields}
        props = {"packages": list(packages), "release": release, "mirrors": mirrors, "purge_cache": purge_cache}
        outputs = (*(field for field in DebFiles.model_fields if field not in props), *_CACHE_OUTPUTS)
        super().__init__(DebsProvider(), name, {**props, **dict.fromkeys(outputs)}, opts)


class PythonInterpreter(CacheResource, module="artifacts", name="PythonInterpreter"):
    """The nodes' CPython, built once from its source tarball into `.cache/python/<key>/` for `prefix`
    (`deploys.layout.PYTHON_PREFIX`). `build_key` names the source digest and build recipe, so a new
    recipe diffs at preview."""

    files_type = PythonBuild

    def __init__(
        self,
        name: str,
        prefix: str,
        source: str,
        sha256: str,
        purge_cache: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "prefix": prefix,
            "source": source,
            "sha256": sha256,
            "build_key": BuildRecipe(prefix=prefix).key(sha256),
            "purge_cache": purge_cache,
        }
        outputs = (*(field for field in PythonBuild.model_fields if field not in props), *_CACHE_OUTPUTS)
        super().__init__(PythonProvider(), name, {**props, **dict.fromkeys(outputs)}, opts)
