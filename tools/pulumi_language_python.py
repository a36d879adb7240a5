"""A Python language host for the Pulumi CLI, for machines where Pulumi's own cannot be built.

Pulumi's Go language host (`pulumi-language-python`) lives in an untagged Go module that the
package registries reachable here do not serve (see README, "Troubleshooting"). The engine
only needs a gRPC `LanguageRuntime` that can run the program, so this one implements that
contract over the SDK's own generated stubs and delegates the real work to Pulumi's
`pulumi-language-python-exec` script, exactly as the Go host does.

The engine starts it as `pulumi-language-python [-flags...] <engine-address>`, reads the port
it listens on from the first line of stdout, and calls `Run` once per preview/update.

It also runs Python policy packs (`pulumi preview --policy-pack <dir>`): since 3.1xx the engine
starts a pack whose PulumiPolicy.yaml says `runtime: python` through the language host's
`RunPlugin` (kind `analyzer`); the dedicated `pulumi-analyzer-policy-python` shim is gone.
"""

import importlib.util
import json
import os
import subprocess
import sys
import threading
import types
from concurrent import futures
from pathlib import Path


def _bare_sdk_packages() -> None:
    """Registers `pulumi` and `pulumi.runtime` as empty packages, so that importing the generated
    stubs under them skips the SDK's `__init__`s: they load the whole SDK, which is half of this
    host's start-up (about 0.3 s of 0.5 s), and the engine starts a host up to three times per `up`."""
    root = importlib.util.find_spec("pulumi").submodule_search_locations[0]
    for name, path in (("pulumi", root), ("pulumi.runtime", os.path.join(root, "runtime"))):
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package


_bare_sdk_packages()

import grpc  # noqa: E402
from google.protobuf import empty_pb2, json_format  # noqa: E402
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2  # noqa: E402

# Exit status with which the exec script says it already showed the user an actionable error.
EXITED_AFTER_USER_MESSAGE = 32

EXEC_SCRIPT = Path(__file__).with_name("pulumi-language-python-exec")


class PythonLanguageRuntime(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str, version: str):
        self.engine_address = engine_address
        self.version = version

    def Handshake(self, request, context):
        self.engine_address = request.engine_address or self.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=self.version)

    def GetRequiredPlugins(self, request, context):
        # Plugins are installed by `make setup`, never acquired at run time.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def InstallDependencies(self, request, context):
        # Dependencies come from the hash-locked `.venv` that `make setup` builds.
        return iter(())

    def About(self, request, context):
        return language_pb2.AboutResponse(
            executable=sys.executable, version=sys.version.split()[0]
        )

    def GetProgramDependencies(self, request, context):
        return language_pb2.GetProgramDependenciesResponse()

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    def Run(self, request, context):
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        status = subprocess.call(
            [sys.executable, "-u", str(EXEC_SCRIPT), *self._exec_arguments(request)],
            env=env,
        )
        if status == 0:
            return language_pb2.RunResponse()
        if status == EXITED_AFTER_USER_MESSAGE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(
            error=f"program exited with non-zero exit code: {status}"
        )

    def RunPlugin(self, request, context):
        """Runs a policy pack as Pulumi's Go host does: `python -u -m pulumi.policy <args> <pack dir>`
        in the pack's folder, with the interpreter of the pack's `virtualenv` option (relative to the
        pack, as in PulumiPolicy.yaml) or this host's own; its stdout (the first line is the
        analyzer's port) and stderr stream back, then its exit code. The Go host also proxies the
        analyzer to pass the stack's config in the environment; the engine hands the same config to
        the pack's `ConfigureStack`, which pulumi_policy serves, so packs that read it still get it."""
        if request.kind != "analyzer":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"only policy packs run as plugins here, not {request.kind!r}")
        pack = request.info.program_directory
        options = json_format.MessageToDict(request.info.options)
        python = os.path.join(pack, options["virtualenv"], "bin", "python") if "virtualenv" in options else sys.executable
        process = subprocess.Popen(
            [python, "-u", "-m", "pulumi.policy", *request.args, pack], cwd=pack,
            env=dict(entry.split("=", 1) for entry in request.env if "=" in entry),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        context.add_callback(process.kill)  # the engine cancels the call when it is done with the pack
        yield from _streamed(process)
        yield language_pb2.RunPluginResponse(exitcode=process.wait())

    def _exec_arguments(self, request) -> list[str]:
        flags = {
            "monitor": request.monitor_address,
            "engine": self.engine_address,
            "project": request.project,
            "root_directory": request.info.root_directory,
            "stack": request.stack,
            "pwd": request.pwd,
            "dry_run": "true" if request.dryRun else "false",
            "parallel": str(request.parallel),
            "organization": request.organization,
        }
        arguments = [item for key, value in flags.items() if value for item in (f"--{key}", value)]
        return [*arguments, request.info.entry_point or ".", *request.args]


def _streamed(process: subprocess.Popen):
    """The process's stdout and stderr as `RunPluginResponse`s, in the order they arrive, until both close."""
    chunks: list = []
    arrived = threading.Condition()

    def pump(stream, field: str) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with arrived:
                chunks.append(language_pb2.RunPluginResponse(**{field: chunk}))
                arrived.notify()
        with arrived:
            chunks.append(None)
            arrived.notify()

    for stream, field in ((process.stdout, "stdout"), (process.stderr, "stderr")):
        threading.Thread(target=pump, args=(stream, field), daemon=True).start()
    open_streams = 2
    while open_streams:
        with arrived:
            arrived.wait_for(lambda: chunks)
            chunk = chunks.pop(0)
        if chunk is None:
            open_streams -= 1
        else:
            yield chunk


def main(argv: list[str]) -> None:
    positional = [arg for arg in argv if not arg.startswith("-")]
    engine_address = positional[-1] if positional else ""
    version = os.environ.get("RVS_PULUMI_VERSION", "0.0.0").lstrip("v")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(
        PythonLanguageRuntime(engine_address, version), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:  # the engine interrupts its plugins when it is done with them
        server.stop(grace=None)


if __name__ == "__main__":
    main(sys.argv[1:])
