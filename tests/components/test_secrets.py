"""The generated-secret and certificate providers, called directly: once made, nothing but a new
address may change their outputs, whatever happened to the pickled provider (issue 15)."""

from components.secrets import TOKEN_BYTES, _GeneratedCertificateProvider, _GeneratedSecretProvider

OLD_PROVIDER, NEW_PROVIDER = "b64-of-the-old-pickle", "b64-of-the-new-pickle"


def test_a_generated_secret_is_long_and_new_each_create():
    provider = _GeneratedSecretProvider()
    first, second = (provider.create({"value": None}).outs["value"] for _ in range(2))
    assert first != second
    assert len(first) >= TOKEN_BYTES


def test_a_changed_provider_neither_changes_nor_replaces_a_generated_secret():
    olds = {"value": "kept-token", "__provider": OLD_PROVIDER}
    news = {"value": None, "__provider": NEW_PROVIDER}
    result = _GeneratedSecretProvider().diff("id", olds, news)
    assert (result.changes, result.replaces, result.delete_before_replace) == (False, [], False)


def test_update_and_read_keep_the_generated_value():
    provider = _GeneratedSecretProvider()
    olds = {"value": "kept-token", "__provider": OLD_PROVIDER}
    assert provider.update("id", olds, {"value": None, "__provider": NEW_PROVIDER}).outs == {"value": "kept-token"}
    read = provider.read("id", olds)
    assert (read.id, read.outs) == ("id", {"value": "kept-token"})


CERTIFICATE = {"address": "10.0.0.1", "certificate": "CERT", "key": "KEY", "fingerprint": "ab:cd"}
CERTIFICATE_INPUTS = {"address": "10.0.0.1", "certificate": None, "key": None, "fingerprint": None}


def test_a_certificate_is_replaced_only_for_a_new_address():
    provider = _GeneratedCertificateProvider()
    olds = {**CERTIFICATE, "__provider": OLD_PROVIDER}
    unchanged = {**CERTIFICATE_INPUTS, "__provider": NEW_PROVIDER}
    same = provider.diff("id", olds, unchanged)
    assert (same.changes, same.replaces) == (False, [])
    moved = provider.diff("id", olds, {**unchanged, "address": "10.0.0.2"})
    assert (moved.changes, moved.replaces, moved.delete_before_replace) == (True, ["address"], False)


def test_certificate_update_keeps_certificate_and_key():
    olds = {**CERTIFICATE, "__provider": OLD_PROVIDER}
    news = {**CERTIFICATE_INPUTS, "__provider": NEW_PROVIDER}
    assert _GeneratedCertificateProvider().update("id", olds, news).outs == CERTIFICATE


def test_a_secret_version_updates_only_when_the_value_changes():
    from components.secrets import _SecretVersionProvider

    provider = _SecretVersionProvider()
    olds = {"secret": "api_key", "value": "one", "__provider": OLD_PROVIDER}
    assert provider.diff("id", olds, {**olds, "__provider": NEW_PROVIDER}).changes is False
    rotated = provider.diff("id", olds, {**olds, "value": "two"})
    assert (rotated.changes, rotated.replaces) == (True, [])
    assert provider.update("id", olds, {"secret": "api_key", "value": "two"}).outs == {"secret": "api_key", "value": "two"}
