"""The nodes' CPython build: its cache key, the source check, the parses that decide which
libraries are bundled and which glibc the tree needs, and (slow) the built tree itself."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from artifacts import python_build
from artifacts.python_build import BuildError, BuildRecipe
from deploys.layout import PYTHON_PREFIX

READELF_VERSIONS = """
Version needs section '.gnu.version_r' contains 3 entries:
 Addr: 0x0000000000000d48  Offset: 0x000d48  Link: 7 (.dynstr)
  000000: Version: 1  File: libm.so.6  Cnt: 2
  0x0010:   Name: GLIBC_2.35  Flags: none  Version: 5
  0x0020:   Name: GLIBC_2.2.5  Flags: none  Version: 3
  0x0030: Version: 1  File: libc.so.6  Cnt: 3
  0x0040:   Name: GLIBC_2.9  Flags: none  Version: 7
  0x0050:   Name: GLIBC_PRIVATE  Flags: none  Version: 6
  0x0060:   Name: GLIBC_2.34  Flags: none  Version: 4
  0x0070: Version: 1  File: libcrypto.so.3  Cnt: 1
  0x0080:   Name: OPENSSL_3.0.0  Flags: none  Version: 2
"""

LDD = """\tlinux-vdso.so.1 (0x00007ffc5b1e4000)
\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f0a1c1a0000)
\tlibcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f0a1bc00000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1ba1f000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0a1c27e000)
"""


def test_glibc_floor_is_the_newest_glibc_symbol_version_numerically():
    assert python_build.max_glibc_version(READELF_VERSIONS) == "2.35"  # 2.35 > 2.9 > 2.2.5; PRIVATE, OPENSSL ignored
    older = READELF_VERSIONS.replace("GLIBC_2.35", "GLIBC_2.10")
    assert python_build.max_glibc_version(older) == "2.34"
    with pytest.raises(BuildError, match="no GLIBC symbol versions found"):
        python_build.max_glibc_version("  0x0080:   Name: OPENSSL_3.0.0  Flags: none  Version: 2\n")


def test_ldd_output_names_the_libraries_to_bundle_and_a_missing_one_fails():
    assert python_build.resolved_libraries(LDD) == {
        "libssl.so.3": Path("/lib/x86_64-linux-gnu/libssl.so.3"),
        "libcrypto.so.3": Path("/lib/x86_64-linux-gnu/libcrypto.so.3"),
        "libc.so.6": Path("/lib/x86_64-linux-gnu/libc.so.6"),
    }
    with pytest.raises(BuildError, match=r"ldd: libffi.so.8 => not found"):
        python_build.resolved_libraries(LDD + "\tlibffi.so.8 => not found\n")


def test_needed_libraries_of_readelf_dynamic():
    dynamic = (
        " 0x0000000000000001 (NEEDED)             Shared library: [libssl.so.3]\n"
        " 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n"
        " 0x000000000000000f (RPATH)              Library rpath: [/opt/ray-vllm-stack/python/3.11.2/lib]\n"
    )
    assert python_build.needed_libraries(dynamic) == {"libssl.so.3", "libc.so.6"}


def test_elf_files_are_programs_and_shared_objects_only(tmp_path):
    def elf(name: str, kind: int) -> None:
        (tmp_path / name).write_bytes(b"\x7fELF" + bytes(12) + kind.to_bytes(2, "little") + bytes(40))

    elf("python3.11", 2)
    elf("_ssl.so", 3)
    elf("python.o", 1)  # relocatable: nothing loads it
    (tmp_path / "os.py").write_text("import sys\n")
    (tmp_path / "python3").symlink_to("python3.11")
    assert [path.name for path in python_build.elf_files(tmp_path)] == ["_ssl.so", "python3.11"]


def test_cache_key_names_version_source_and_recipe():
    recipe = BuildRecipe(prefix=PYTHON_PREFIX)
    key = recipe.key("a" * 64)
    assert key.startswith("3.11.2-") and key == BuildRecipe(prefix=PYTHON_PREFIX).key("a" * 64)
    assert recipe.key("b" * 64) != key
    assert BuildRecipe(prefix="/opt/other/3.11.2").key("a" * 64) != key
    assert BuildRecipe(prefix=PYTHON_PREFIX, configure=("--enable-optimizations",)).key("a" * 64) != key
    assert recipe.configure_args()[:2] == [f"--prefix={PYTHON_PREFIX}", "--disable-test-modules"]
    assert f"LDFLAGS=-Wl,-rpath,{PYTHON_PREFIX}/lib -Wl,--disable-new-dtags" in recipe.configure_args()


def test_a_local_source_is_used_in_place_when_its_sha256_matches(tmp_path):
    tarball = tmp_path / "Python-3.11.2.tgz"
    tarball.write_bytes(b"not really a tarball")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert python_build.fetch_source(str(tarball), digest, tmp_path / "sources") == tarball
    assert python_build.fetch_source(f"file://{tarball}", digest, tmp_path / "sources") == tarball
    with pytest.raises(BuildError, match=rf"sha256 is {digest}, expected {'0' * 64}$"):
        python_build.fetch_source(str(tarball), "0" * 64, tmp_path / "sources")
    with pytest.raises(BuildError, match="no such file"):
        python_build.fetch_source(str(tmp_path / "missing.tgz"), digest, tmp_path / "sources")
    with pytest.raises(BuildError, match="use an http"):
        python_build.fetch_source("ftp://mirror/Python-3.11.2.tgz", digest, tmp_path / "sources")


def test_a_url_is_downloaded_once_and_a_wrong_digest_keeps_nothing(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "Python-3.11.2.tgz").write_bytes(b"source bytes")
    digest = hashlib.sha256(b"source bytes").hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/Python-3.11.2.tgz"
    sources = tmp_path / "sources"
    try:
        with pytest.raises(BuildError, match="sha256 is"):
            python_build.fetch_source(url, "0" * 64, sources)
        assert list(sources.iterdir()) == []
        fetched = python_build.fetch_source(url, digest, sources)
        assert fetched == sources / f"{digest}.tar.gz" and fetched.read_bytes() == b"source bytes"
        (served / "Python-3.11.2.tgz").unlink()
        assert python_build.fetch_source(url, digest, sources) == fetched  # cached: no second download
    finally:
        server.shutdown()


MODULES = "import ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, venv, readline, decimal, curses.panel"
LOADED_FROM_ELSEWHERE = (
    "import os, platform; "
    "loaded = {line.split()[-1] for line in open('/proc/self/maps') if '.so' in line}; "
    "print(platform.python_version()); "
    "print(sorted(path for path in loaded if not path.startswith(os.environ['PREFIX'] + '/') "
    "and os.path.basename(path) not in os.environ['GLIBC'].split()))"
)


@pytest.mark.slow
def test_the_built_tree_runs_at_its_prefix_on_its_own_libraries(tmp_path):
    """Builds the interpreter (or takes it from the cache) and runs it where nodes run it, in a
    mount namespace with the tree bound at the prefix and no LD_LIBRARY_PATH: the modules import,
    every library in the process but glibc's comes from the tree, and a venv gets pip (provisioning
    installs with it)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("binding the tree at its prefix needs root and unshare")
    built = python_build.prepare_python(PYTHON_PREFIX)
    assert built.version == "3.11.2" and built.prefix == PYTHON_PREFIX
    assert {"libssl.so.3", "libcrypto.so.3", "libffi.so.8", "libsqlite3.so.0"} <= set(built.libraries)
    assert tuple(int(part) for part in built.glibc_floor.split(".")) <= (2, 35)  # Ubuntu 22.04's
    python = f"{PYTHON_PREFIX}/bin/python3"
    # First from the cache folder, the prefix still empty: its libraries then come from the system.
    control = f'PYTHONHOME={built.path} {built.path}/bin/python3 -c "{MODULES}; {LOADED_FROM_ELSEWHERE}"'
    script = (
        f'{python} -c "{MODULES}; {LOADED_FROM_ELSEWHERE}" && '
        f"{python} -m venv {tmp_path}/venv && {tmp_path}/venv/bin/python -m pip --version"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs tmpfs /opt && mkdir -p {PYTHON_PREFIX} && {control} "
         f"&& mount --bind {built.path} {PYTHON_PREFIX} && {script}"],
        env={"PATH": "/usr/bin:/bin", "PREFIX": PYTHON_PREFIX, "GLIBC": " ".join(python_build.GLIBC_SONAMES)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, from_the_system, version, outside, pip = done.stdout.splitlines()
    assert "/libssl.so.3'" in from_the_system and "/opt/" not in from_the_system
    assert version == "3.11.2" and outside == "[]"
    assert pip.startswith("pip ") and f"{tmp_path}/venv/" in pip
