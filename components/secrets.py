"""Cluster secrets: the configured ones, or ones generated once and kept encrypted in state."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult
from pydantic import SecretStr

from stack.tls import certificate_fingerprint, self_signed_certificate

TOKEN_BYTES = 32


class _GeneratedSecretProvider(ResourceProvider):
    """The value is made once, at create, and nothing may ever make it again (issue 15).

    Its only input is `{"value": None}`, so the one thing that can differ between runs is the pickled
    provider itself (`__provider`: an SDK, Python or dill upgrade, a moved class). The SDK's defaults would
    then diff "unknown", the engine would see `__provider` changed and call the default `update`,
    which returns no outputs: the API key and Ray token would be gone.
    """

    def create(self, props):
        return CreateResult(id_=secrets.token_hex(8), outs={"value": secrets.token_urlsafe(TOKEN_BYTES)})

    def diff(self, _id, olds, news):
        """Never a change and never a replace: no input can ask for a new value."""
        return DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def update(self, _id, olds, news):
        """Unreachable while `diff` reports no change; should anything still call it, keep the value."""
        return UpdateResult(outs={"value": olds["value"]})

    def read(self, id_, props):
        """`pulumi refresh`: nothing lives outside state, so the recorded value is the truth."""
        return ReadResult(id_, {"value": props["value"]})


class GeneratedSecret(Resource):
    """A random token made at the first `up` and stable afterwards; only its ciphertext is in state."""

    value: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            _GeneratedSecretProvider(),
            name,
            {"value": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"])),
        )


class _GeneratedCertificateProvider(ResourceProvider):
    def create(self, props):
        certificate, key = self_signed_certificate(props["address"])
        outs = {"address": props["address"], "certificate": certificate, "key": key,
                "fingerprint": certificate_fingerprint(certificate)}  # fmt: skip
        return CreateResult(id_=secrets.token_hex(8), outs=outs)

    def diff(self, _id, olds, news):
        """A new address is a new certificate; anything else (the pickled provider) changes nothing."""
        changed = olds.get("address") != news.get("address")
        return DiffResult(changes=changed, replaces=["address"] if changed else [], delete_before_replace=False)

    def update(self, _id, olds, news):
        """Unreachable while `diff` only replaces; should anything still call it, keep certificate and key
        (the SDK's default returns no outputs, and clients pin the fingerprint)."""
        return UpdateResult(outs={key: olds[key] for key in ("address", "certificate", "key", "fingerprint")})


class GeneratedCertificate(Resource):
    """A self-signed certificate for the API front at `address`, made once; its key is kept only
    encrypted in state, its sha256 fingerprint is what clients pin."""

    certificate: pulumi.Output[str]
    key: pulumi.Output[str]
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, address: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            _GeneratedCertificateProvider(),
            name,
            {"address": address, "certificate": None, "key": None, "fingerprint": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["key"])),
        )


class _SecretVersionProvider(ResourceProvider):
    """Tells a preview *that* a secret changes, by name, never what it is: the engine's own diff of a
    secret input is not in `pulumi preview --json`, so this provider compares the value itself (it
    sees it decrypted) and reports an update. Touches no host; nothing restarts because of it."""

    def create(self, props):
        return CreateResult(id_=secrets.token_hex(8), outs=props)

    def diff(self, _id, olds, news):
        changed = olds.get("value") != news.get("value") or olds.get("secret") != news.get("secret")
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id, olds, news):
        return UpdateResult(outs=news)


class SecretVersion(Resource, module="secrets", name="SecretVersion"):
    """One named secret as the cluster uses it: an update in a preview means it rotates (`tools.review`)."""

    def __init__(self, name: str, secret: str, value: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            _SecretVersionProvider(),
            name,
            {"secret": secret, "value": pulumi.Output.secret(value)},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"])),
        )


@dataclass(frozen=True)
class ClusterSecretsArgs:
    ray_token: SecretStr | None
    api_key: SecretStr | None


class ClusterSecrets(pulumi.ComponentResource):
    ray_token: pulumi.Output[str]
    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterSecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:ClusterSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.ray_token = self._secret(name, "ray_token", args.ray_token, child)
        self.api_key = self._secret(name, "api_key", args.api_key, child)
        self.register_outputs({"ray_token": self.ray_token, "api_key": self.api_key})

    @staticmethod
    def _secret(
        prefix: str, key: str, configured: SecretStr | None, opts: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        """The configured value of config key `key`, else one generated once; and its `SecretVersion`."""
        name = f"{prefix}-{key.replace('_', '-')}"
        if configured is not None:
            value = pulumi.Output.secret(configured.get_secret_value())
        else:
            value = pulumi.Output.secret(GeneratedSecret(name, opts).value)
        SecretVersion(f"{name}-version", key, value, opts)
        return value
