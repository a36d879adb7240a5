"""The stack's configuration: one pydantic model, the single source of truth.

Field-level rules (types, ranges, choices) live on the models; rules that relate several
fields live in `stack.validation`, which reports every problem at once.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from artifacts.debs import Mirrors
from artifacts.python_build import DEFAULT_SHA256, DEFAULT_SOURCE
from artifacts.weights import HF_REPO_AT_REVISION
from deploys.platforms import PlatformKey
from deploys.specs import LOGIN_NAME, SERVED_NAME, URL

Port = Annotated[int, Field(ge=1, le=65535, description="A TCP port, 1-65535.")]
GiB = Annotated[float, Field(gt=0, description="An amount of memory in GiB.")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="A DNS-label-like name.")]
PosixUser = Annotated[
    str, Field(pattern=LOGIN_NAME.pattern, description="A login name as useradd accepts it (never an ssh option).")
]
ServedName = Annotated[
    str,
    Field(
        pattern=SERVED_NAME.pattern,
        description="Letters, digits, `.`, `_`, `-`, starting with a letter or digit: it names the model's folders on every node.",
    ),
]
InterfaceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$", description="A Linux interface name.")]
Url = Annotated[str, Field(pattern=URL.pattern, description="An http(s) URL.")]


class StrictModel(BaseModel):
    """A typo in a key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Gpu(StrictModel):
    name: str = Field("gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,63}$")
    memory_gb: GiB


class SshSettings(StrictModel):
    address: IPv4Address | None = Field(
        None,
        description="Where SSH connects when it is not the cluster address (a cloud host's public address, set "
        "by the stack once the instance exists); the host's `address` otherwise.",
    )
    user: PosixUser = "root"
    port: Port = 22
    key_file: Path
    host_keys: Literal["accept-new", "ignore"] = Field(
        "accept-new",
        description="`ignore` only for lab hosts (`lab: true`), whose keys are new after every `lab up`, "
        "or with `security.allow_unverified_host_keys`.",
    )
    sudo: bool | None = Field(
        None,
        description="Run every command on the host through sudo (password-less, or with the `sudo_password` "
        "secret); on by default when `user` is not root.",
    )

    @property
    def uses_sudo(self) -> bool:
        return self.sudo if self.sudo is not None else self.user != "root"


class HostConfig(StrictModel):
    name: Name
    address: IPv4Address | None = Field(
        description="The host's cluster address: Ray, vLLM and NCCL/GLOO traffic use it. Unknown (None) only for "
        "a host of `cloud.groups` until its instance exists."
    )
    ssh: SshSettings
    role: Literal["head", "worker"]
    accelerator: Literal["nvidia", "cpu"]
    gpus: list[Gpu] = []
    lab: bool = Field(False, description="A simulated host from `python -m lab up` (written by the lab only).")
    route_out: bool = Field(
        True,
        description="The node reaches its own package sources (or `packages.proxy`): it installs the locked wheels "
        "from `packages.index_url` and system packages with its apt; false: the controller pushes everything, "
        "the system packages as .debs of the host's `os` fetched from `packages.*_mirror`.",
    )
    os: PlatformKey | None = Field(
        None,
        description="The OS release the host runs (`debian-12`, `ubuntu-24.04`, ...), when known: "
        "checked at preview against the supported ones, and at `up` against the node.",
    )
    cloud_group: Name | None = Field(
        None, description="The `cloud.groups[].name` this host was made from (set by the stack, never in an inventory)."
    )

    @property
    def stage_devices(self) -> int:
        """Devices this host contributes to the parallel layout: its GPUs, or the host itself on CPU."""
        return len(self.gpus) if self.accelerator == "nvidia" else 1


class ModelConfig(StrictModel):
    path: Path | None = Field(None, description="A model directory on the controller.")
    huggingface: str | None = Field(None, description="`owner/repo@revision`, fetched once on the controller.")
    config_json: Path | None = Field(
        None, description="The model's config.json for planning at preview, when the weights are not local yet."
    )
    served_name: ServedName
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    quantization: Literal["awq", "gptq", "gptq-8bit", "fp8"] | None = None
    keep_previous: int = Field(1, ge=0, description="Older models each node keeps besides the served one.")
    hf_endpoint: Url | None = Field(None, description="A Hugging Face mirror; HF_ENDPOINT from the environment otherwise.")

    @property
    def config_file(self) -> Path | None:
        """The model's config.json as planning and validation read it: `config_json`, else `path`'s."""
        return self.config_json or (self.path / "config.json" if self.path else None)

    @field_validator("huggingface")
    @classmethod
    def _pinned_revision(cls, value: str | None) -> str | None:
        if value is not None and not HF_REPO_AT_REVISION.match(value):
            raise ValueError(
                "must be `owner/repo@<40-hex commit>`: a branch or tag can move, so only a commit pins the weights"
            )
        return value


class Parallelism(StrictModel):
    pipeline_size: int = Field(1, ge=1)
    tensor_size: int = Field(1, ge=1)
    layer_partition: list[Annotated[int, Field(ge=1)]] | None = None


class NetworkConfig(StrictModel):
    subnet: IPv4Network | None = Field(None, description="Every host address must lie in it.")
    interface: InterfaceName | None = Field(
        None, description="Interface carrying cluster traffic; detected per node if unset."
    )
    nccl_ib_disable: bool = Field(True, description="Plain Ethernet: keep NCCL off InfiniBand.")
    env: dict[str, str] = Field(
        {}, description="Extra runtime variables on every node; the ones the stack manages are refused (see validation)."
    )


class NvidiaDriverInstall(StrictModel):
    """A pinned NVIDIA driver (and CUDA toolkit) installed from an apt repository the nodes reach."""

    url: Url
    suite: str = Field("/", pattern=r"^(/|[a-z0-9][a-z0-9._-]{0,63}/?)$")
    signing_key_file: Path
    packages: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+$")]] = Field(
        min_length=1, description="Pinned `name=version`, e.g. cuda-drivers=580.65.06-1."
    )


class PackagesConfig(Mirrors):
    """Where packages come from. The lock's hashes pin every wheel whichever index serves it; the mirrors serve
    the controller when it fetches .debs for hosts without a route out (http(s), or `file:///` of a mirror copy)."""

    index_url: Url = Field("https://pypi.org/simple", description="A PEP 503 index serving the lock's wheels (PyPI or a mirror).")
    proxy: Url | None = Field(None, description="An HTTP proxy for pip and apt on nodes with a route out.")
    keep_previous: int = Field(
        1, ge=0, le=10,
        description="Venvs of earlier package sets kept on each node (besides any a service runs), to go back to.",
    )  # fmt: skip


class PythonSource(StrictModel):
    """Where the controller gets the CPython source it builds the nodes' interpreter from
    (`artifacts.python_build`), checked against `sha256`."""

    url: Url = Field(DEFAULT_SOURCE, description="The source tarball; default: Debian's copy of python.org's 3.11.2.")
    file: Path | None = Field(None, description="A local copy of the tarball, used instead of `url`.")
    sha256: str = Field(DEFAULT_SHA256, pattern=r"^[0-9a-f]{64}$", description="The tarball's sha256.")

    @property
    def source(self) -> str:
        return str(self.file) if self.file is not None else self.url


class SecurityConfig(StrictModel):
    dashboard_bind: Literal["localhost", "cluster"] = "localhost"
    api_bind: Literal["localhost", "cluster", "all"] = Field(
        "cluster", description="Where the API front listens; vLLM itself always listens on the head's loopback."
    )
    api_allow_from: list[IPv4Network] = Field(
        [IPv4Network("0.0.0.0/0")], description="Networks the firewall lets reach the API port."
    )
    ray_clients_from: list[IPv4Network] = Field(
        [], description="Networks besides the cluster's members that may reach the Ray client port and dashboard."
    )
    firewall: bool = Field(True, description="nftables rules on every node built from `required_ports`.")
    tls: Literal["off", "self-signed", "files"] = Field(
        "off", description="TLS on the API front: a certificate made once for the head, or `tls_cert_file`/`tls_key_file`."
    )
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    service_user: PosixUser = Field("ray-vllm", description="The system user Ray, vLLM and the API front run as.")
    allow_unverified_host_keys: bool = Field(
        False, description="Let non-lab hosts use `ssh.host_keys: ignore` (a man in the middle then goes unnoticed)."
    )


class Ports(StrictModel):
    gcs: Port = 6379
    dashboard: Port = 8265
    ray_client: Port = 10001
    node_manager: Port = 6380
    object_manager: Port = 6381
    dashboard_agent_grpc: Port = 6382
    dashboard_agent_http: Port = 52365
    metrics_export: Port = 6383
    runtime_env_agent: Port = 6384
    min_worker: Port = 10002
    max_worker: Port = 10100
    api: Port = 8000
    vllm: Port = Field(8001, description="vLLM's own port on the head's loopback, behind the API front on `api`.")
    vllm_internal: Port = Field(
        29500, description="VLLM_PORT: the base of the ports vLLM's processes open to each other."
    )
    autoscaler_metrics: Port = Field(44217, description="Ray's autoscaler metrics (head; 0.0.0.0, no auth).")
    dashboard_metrics: Port = Field(44227, description="Ray's dashboard metrics (head; 0.0.0.0, no auth).")

    def single_ports(self) -> dict[str, int]:
        return {name: value for name, value in self if name not in ("min_worker", "max_worker")}


class RaySettings(StrictModel):
    num_cpus: int | None = Field(None, ge=1, description="CPUs Ray may use per node; all by default.")
    memory_gb: GiB | None = None
    object_store_gb: GiB | None = None
    dashboard: bool = True


class VllmSettings(StrictModel):
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    cpu_kvcache_space_gb: GiB = Field(1, description="KV cache per stage on CPU nodes (VLLM_CPU_KVCACHE_SPACE).")
    extra_args: list[str] = []



AmiId = Annotated[
    str, Field(pattern=r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$", description="An AMI id: `ami-` and 8 or 17 hex digits.")
]
SubnetId = Annotated[
    str, Field(pattern=r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$", description="`subnet-` and 8 or 17 hex digits.")
]
TagKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/=+@-]{1,127}$", description="An EC2 tag key.")]
TagValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9 _.:/=+@-]{0,255}$", description="An EC2 tag value.")]


class CloudHostGroup(StrictModel):
    """`count` identical instances; each becomes a host `<name>-<i>` (i from 1) of the cluster."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,49}$", description="Names the group's hosts `<name>-<i>`.")
    instance_type: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,15}\.[a-z0-9]{1,16}$",
        description="An EC2 instance type of the shipped table (`cloud/instance_types.py`): its GPUs plan the model at preview.",
    )
    count: int = Field(1, ge=1, le=16)
    image: AmiId
    os: PlatformKey = Field(description="The release the image runs (`ubuntu-24.04`, ...): `up` holds the node to it.")
    disk_gb: int = Field(200, ge=8, le=16384, description="The root volume (gp3), GiB: the venv and weights live there.")
    subnet_id: SubnetId | None = Field(None, description="The subnet (and so the VPC); the default VPC's otherwise.")
    ssh_user: PosixUser = Field("ubuntu", description="The image's login user (ubuntu, debian, admin...).")
    host_keys: Literal["accept-new", "ignore"] = Field(
        "accept-new",
        description="As `hosts[].ssh.host_keys`: `ignore` needs `security.allow_unverified_host_keys` (a recycled "
        "address then reaches a new instance whose key differs).",
    )
    route_out: bool = Field(
        True,
        description="The subnet reaches the internet (a public IP or a NAT): nodes fetch packages themselves; false "
        "for a private subnet without one, where the controller pushes everything.",
    )
    market: Literal["on-demand", "spot"] = Field("on-demand", description="Spot: cheaper, but AWS may take it back.")
    role: Literal["head", "worker"] = Field("worker", description="`head` for a group of count 1 only.")
    tags: dict[TagKey, TagValue] = Field({}, description="Extra tags on the group's instances and volumes.")

    @field_validator("tags")
    @classmethod
    def _own_tags(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(key for key in value if key.startswith(("aws:", "ray-vllm-stack:")) or key == "Name")
        if taken:
            raise ValueError(
                f"{', '.join(taken)}: `aws:` keys are AWS's, `Name` and `ray-vllm-stack:` ones the stack's; rename them"
            )
        return value


class CloudConfig(StrictModel):
    """GPU instances the stack rents, created at `up` and terminated at `destroy`, next to the inventory's hosts."""

    provider: Literal["aws"] = Field(description="Only AWS (EC2, through boto3) so far.")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]{1,2}$", description="e.g. us-east-1.")
    endpoint_url: Url | None = Field(
        None, description="An AWS-compatible EC2 endpoint (a local moto_server in tests); AWS's own otherwise."
    )
    public_key_file: Path = Field(
        description="An OpenSSH public key (`.pub`) imported as the instances' key pair; its private half (the same "
        "path without `.pub`) is the SSH key the stack logs in with."
    )
    ssh_allow_from: list[IPv4Network] = Field(
        min_length=1, description="Networks that may reach the instances' SSH port: the controller's address."
    )
    cluster_network: Literal["private", "public"] = Field(
        "private",
        description="The addresses the cluster talks over: the VPC's private ones (all hosts in the cloud), or the "
        "public ones (a cluster mixing inventory hosts and instances; the security group admits only members).",
    )
    ssh_wait_s: int = Field(
        600, ge=0, le=3600, description="How long `up` waits for each new instance's SSH port; 0: not at all."
    )
    groups: list[CloudHostGroup] = Field(min_length=1)

    @property
    def private_key_file(self) -> Path:
        return self.public_key_file.with_suffix("")


class StackConfig(StrictModel):
    """Everything `Pulumi.<stack>.yaml` may set under the `ray-vllm-stack:` namespace."""

    hosts: list[HostConfig] = Field(
        [], description="The inventory's hosts, then one per instance of `cloud.groups` (added by validation)."
    )
    cloud: CloudConfig | None = None
    model: ModelConfig
    parallelism: Parallelism = Parallelism()
    network: NetworkConfig = NetworkConfig()
    packages: PackagesConfig = PackagesConfig()
    security: SecurityConfig = SecurityConfig()
    ports: Ports = Ports()
    ray: RaySettings = RaySettings()
    vllm: VllmSettings = VllmSettings()
    nvidia_driver_install: NvidiaDriverInstall | None = None
    python: PythonSource = PythonSource()
    purge_caches: bool = Field(
        False, description="Let `destroy` delete the interpreter, wheel, .deb and weight caches too."
    )
    ray_token: SecretStr | None = None
    api_key: SecretStr | None = None
    hf_token: SecretStr | None = None
    sudo_password: SecretStr | None = Field(
        None, description="The SSH user's sudo password on hosts reached through sudo; password-less sudo needs none."
    )

    @property
    def head(self) -> HostConfig:
        return next(host for host in self.hosts if host.role == "head")

    def host(self, name: str) -> HostConfig:
        return next(host for host in self.hosts if host.name == name)

    @property
    def accelerator(self) -> Literal["nvidia", "cpu"]:
        """The cluster's kind; validation rejects a mix, so the first host speaks for all."""
        return self.hosts[0].accelerator


SECRET_KEYS = ("ray_token", "api_key", "hf_token", "sudo_password")
