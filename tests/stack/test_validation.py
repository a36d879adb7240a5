"""Every bad input gives one message per problem that names the config key and the fix."""

import copy

import pytest

from artifacts.paths import REPO_ROOT
from stack.validation import ConfigError, load_stack_config


def problems_of(raw: dict, secret_keys: frozenset = frozenset()) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, set(secret_keys), REPO_ROOT)
    return caught.value.problems


def test_valid_config_loads(raw_config):
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    assert config.head.name == "lab1"
    assert config.ports.gcs == 6379
    assert config.parallelism.pipeline_size == 2


def test_parallel_sizes_must_match_the_accelerators(raw_config):
    raw_config["parallelism"] = {"pipeline_size": 2, "tensor_size": 2}
    assert problems_of(raw_config) == [
        "parallelism: pipeline size 2 x tensor size 2 = 4 accelerators, but 2 accelerators were given; "
        "choose sizes whose product is 2 (the hosts have lab1: 1, lab2: 1)",
        "hosts[0].gpus: lab1 has 1 device(s), not a multiple of parallelism.tensor_size 2; "
        "tensor parallelism stays within a host",
        "hosts[1].gpus: lab2 has 1 device(s), not a multiple of parallelism.tensor_size 2; "
        "tensor parallelism stays within a host",
    ]


def test_gpu_hosts_count_their_gpus(raw_config):
    for host, gpus in zip(raw_config["hosts"], ([24], [16, 16])):
        host["accelerator"] = "nvidia"
        host["gpus"] = [{"memory_gb": memory} for memory in gpus]
    raw_config["parallelism"] = {"pipeline_size": 2}
    assert problems_of(raw_config)[0] == (
        "parallelism: pipeline size 2 x tensor size 1 = 2 accelerators, but 3 accelerators were given; "
        "choose sizes whose product is 3 (the hosts have lab1: 1, lab2: 2)"
    )


def test_duplicate_names_and_addresses(raw_config):
    raw_config["hosts"][1].update(name="lab1", address="10.201.0.11")
    assert problems_of(raw_config) == [
        "hosts[].name: lab1 is used by 2 hosts; each host needs its own name",
        "hosts[].address: 10.201.0.11 is used by 2 hosts; each host needs its own address",
    ]


def test_unknown_accelerator(raw_config):
    raw_config["hosts"][0]["accelerator"] = "tpu"
    assert problems_of(raw_config) == ["hosts[0].accelerator: unknown value 'tpu'; use one of: nvidia, cpu"]


def test_declared_os_is_one_of_the_supported_platforms(raw_config):
    """Checked at preview; the node's preflight then holds the node to it."""
    from stack.node_steps import NodeInputs, platform_spec

    raw_config["hosts"][0]["os"] = "ubuntu-24.04"
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    assert [host.os for host in config.hosts] == ["ubuntu-24.04", "debian-12"]
    assert platform_spec(NodeInputs(config.hosts[0], config.network, "m")).declared == "ubuntu-24.04"
    raw_config["hosts"][1]["os"] = "rocky-9"
    assert problems_of(raw_config) == [
        "hosts[1].os: unknown value 'rocky-9'; use one of: debian-12, debian-13, ubuntu-22.04, ubuntu-24.04"
    ]


def test_missing_ssh_key(raw_config, tmp_path):
    raw_config["hosts"][1]["ssh"]["key_file"] = str(tmp_path / "absent")
    assert problems_of(raw_config) == [
        f"hosts[1].ssh.key_file: {tmp_path / 'absent'} does not exist; "
        "point it at the private key that logs in to lab2"
    ]


def test_secret_in_plain_text(raw_config):
    raw_config["api_key"] = "sk-visible-0123456789"
    assert problems_of(raw_config) == [
        "api_key: given in plain text; store it encrypted with `pulumi config set --secret api_key <value>` "
        "(or remove it to have one generated)"
    ]
    assert load_stack_config(raw_config, {"api_key"}, REPO_ROOT).api_key.get_secret_value() == "sk-visible-0123456789"


def test_secret_value_never_appears_in_messages(raw_config):
    raw_config["ray_token"] = "super-secret-token"
    raw_config["hosts"][0]["accelerator"] = "tpu"
    assert not any("super-secret-token" in line for line in problems_of(raw_config))


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ({"gcs": 70000}, ["ports.gcs: Input should be less than or equal to 65535 (got 70000)"]),
        ({"api": 6379}, ["ports.api: 6379 is also ports.gcs; give each service its own port"]),
        (
            {"api": 10050},
            ["ports.api: 10050 lies in the worker port range 10002-10100; move it out of the range"],
        ),
    ],
)
def test_ports_out_of_range_or_clashing(raw_config, ports, expected):
    raw_config["ports"] = ports
    assert problems_of(raw_config) == expected


def test_layer_partition_must_sum_to_the_layer_count(raw_config):
    raw_config["parallelism"]["layer_partition"] = [3, 2]
    assert problems_of(raw_config) == [
        "parallelism.layer_partition: sums to 5 but the model has 4 layers; make the entries add up to 4"
    ]


def test_layer_partition_needs_one_entry_per_stage(raw_config):
    raw_config["parallelism"]["layer_partition"] = [4]
    assert problems_of(raw_config) == [
        "parallelism.layer_partition: has 1 entries for 2 pipeline stages; give one layer count per stage"
    ]


def test_model_path_must_exist(raw_config, tmp_path):
    raw_config["model"]["path"] = str(tmp_path / "nowhere")
    assert problems_of(raw_config) == [
        f"model.path: {tmp_path / 'nowhere'} is not a model directory with a config.json"
    ]


@pytest.mark.parametrize(("roles", "expected"), [
    (("worker", "worker"), "hosts: no host has role `head`; give exactly one host `role: head`"),
    (("head", "head"), "hosts: 2 hosts have role `head` (lab1, lab2); keep exactly one, make the others `worker`"),
])
def test_exactly_one_head(raw_config, roles, expected):
    for host, role in zip(raw_config["hosts"], roles):
        host["role"] = role
    assert problems_of(raw_config) == [expected]


def test_unknown_key_suggests_the_right_one(raw_config):
    raw_config["parallelism"]["pipeline_sise"] = 2
    assert problems_of(raw_config) == [
        "parallelism.pipeline_sise: unknown key (did you mean `pipeline_size`?); remove it or fix its spelling"
    ]


def test_all_problems_are_reported_at_once(raw_config):
    bad = copy.deepcopy(raw_config)
    bad["hosts"][0]["role"] = "worker"
    bad["ports"] = {"api": 6379}
    assert len(problems_of(bad)) == 2


def test_inventory_file_supplies_the_hosts(raw_config, tmp_path):
    import yaml

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": raw_config.pop("hosts")}))
    raw_config["inventory"] = str(inventory)
    assert [host.name for host in load_stack_config(raw_config, set(), REPO_ROOT).hosts] == ["lab1", "lab2"]

    raw_config["inventory"] = str(tmp_path / "missing.yaml")
    assert problems_of(raw_config)[0].startswith(f"inventory: file {tmp_path / 'missing.yaml'} not found")


def test_inventory_errors_name_the_file(raw_config, tmp_path):
    import yaml

    raw_config["hosts"][1]["accelerator"] = "tpu"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": raw_config.pop("hosts")}))
    raw_config["inventory"] = str(inventory)
    assert problems_of(raw_config) == [
        f"{inventory}: hosts[1].accelerator: unknown value 'tpu'; use one of: nvidia, cpu"
    ]


def test_driver_install_needs_its_signing_key(raw_config, tmp_path):
    raw_config["nvidia_driver_install"] = {
        "url": "http://mirror.lan/cuda/debian12/x86_64", "signing_key_file": str(tmp_path / "none.asc"),
        "packages": ["cuda-drivers=580.65.06-1"],
    }
    assert problems_of(raw_config) == [
        f"nvidia_driver_install.signing_key_file: {tmp_path / 'none.asc'} does not exist; "
        "save the repository's ASCII-armored key there"
    ]


def test_a_login_user_that_is_not_root_goes_through_sudo_and_cannot_turn_it_off(raw_config):
    raw_config["hosts"][0]["ssh"]["user"] = "ubuntu"
    config = load_stack_config(copy.deepcopy(raw_config), set(), REPO_ROOT)
    assert [host.ssh.uses_sudo for host in config.hosts] == [True, False]  # ubuntu: sudo; root: none
    raw_config["hosts"][0]["ssh"]["sudo"] = False
    assert problems_of(raw_config) == [
        "hosts[0].ssh.sudo: ubuntu is not root, and the stack writes /opt, /etc and /var and manages systemd units "
        "on lab1: remove `sudo: false` (the user needs password-less sudo, or set the secret "
        "`pulumi config set --secret sudo_password <password>`), or log in as root"
    ]


def test_the_sudo_password_is_a_secret_and_is_never_shown(raw_config):
    raw_config["sudo_password"] = "correct horse battery"
    assert problems_of(raw_config) == [
        "sudo_password: given in plain text; store it encrypted with "
        "`pulumi config set --secret sudo_password <value>`"
    ]
    config = load_stack_config(raw_config, {"sudo_password"}, REPO_ROOT)
    assert config.sudo_password.get_secret_value() == "correct horse battery"


def test_a_host_without_a_route_out_must_declare_its_os(raw_config):
    del raw_config["hosts"][1]["os"]
    assert problems_of(raw_config) == [
        "hosts[1].os: lab2 has `route_out: false`, so the controller pushes its system packages and must know which "
        "release's .debs to fetch: set `os` to one of debian-12, debian-13, ubuntu-22.04, ubuntu-24.04"
    ]
    # Positive controls: with a route out the release may stay unknown; declared, it loads too.
    raw_config["hosts"][1]["route_out"] = True
    assert load_stack_config(raw_config, set(), REPO_ROOT).hosts[1].os is None
    raw_config["hosts"][1].update(os="ubuntu-24.04", route_out=False)
    assert load_stack_config(raw_config, set(), REPO_ROOT).hosts[1].os == "ubuntu-24.04"


def test_unknown_os_and_bad_mirrors_are_named(raw_config):
    raw_config["hosts"][0]["os"] = "ubuntu-20.04"
    raw_config["packages"] = {"debian_mirror": "http://mirror.lan/debian trixie main", "ubuntu_mirror": "file://relative"}
    assert problems_of(raw_config) == [
        "hosts[0].os: unknown value 'ubuntu-20.04'; use one of: debian-12, debian-13, ubuntu-22.04, ubuntu-24.04",
        "packages.debian_mirror: 'http://mirror.lan/debian trixie main' is not allowed; use a plain http(s) URL such as "
        "http://deb.debian.org/debian, or file:///<path> of a mirror on the controller",
        "packages.ubuntu_mirror: 'file://relative' is not allowed; use a plain http(s) URL such as "
        "http://deb.debian.org/debian, or file:///<path> of a mirror on the controller",
    ]
    # Positive control: an http(s) mirror and a mirror copy on the controller are both accepted.
    raw_config["hosts"][0]["os"] = "ubuntu-22.04"
    raw_config["packages"] = {"debian_mirror": "https://mirror.lan:8443/debian", "ubuntu_mirror": "file:///srv/mirror/ubuntu"}
    packages = load_stack_config(raw_config, set(), REPO_ROOT).packages
    assert (packages.debian_mirror, packages.ubuntu_mirror) == ("https://mirror.lan:8443/debian", "file:///srv/mirror/ubuntu")
    assert packages.debian_security_mirror == "http://deb.debian.org/debian-security"


def test_python_source_is_debians_tarball_unless_one_is_given_with_its_sha256(raw_config, tmp_path):
    python = load_stack_config(raw_config, set(), REPO_ROOT).python
    assert python.source.startswith("http://deb.debian.org/") and python.sha256.startswith("2411c74b")
    tarball = tmp_path / "Python-3.11.2.tgz"
    tarball.write_bytes(b"x")
    raw_config["python"] = {"file": str(tarball), "sha256": "a" * 64}
    assert load_stack_config(raw_config, set(), REPO_ROOT).python.source == str(tarball)
    raw_config["python"] = {"url": "http://mirror.lan/Python-3.11.2.tgz"}
    assert problems_of(raw_config) == [
        "python.sha256: give the sha256 of the tarball at `python.url` or `python.file` (its source changed)"
    ]
    raw_config["python"] = {"file": str(tmp_path / "none.tgz"), "url": "http://mirror.lan/p.tgz", "sha256": "a" * 64}
    assert problems_of(raw_config) == [
        "python: set either `python.url` or `python.file`, not both",
        f"python.file: {tmp_path / 'none.tgz'} does not exist; point it at a CPython source tarball",
    ]
