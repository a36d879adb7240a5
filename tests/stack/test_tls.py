import datetime
import hashlib
import ipaddress
import re
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from stack.tls import certificate_fingerprint, self_signed_certificate


def handshake(cert_pem: str, key_pem: str, tmp_path, server_hostname: str) -> None:
    """A TLS handshake in memory: a client that trusts only `cert_pem`, against a server that presents it."""
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "key.pem").write_text(key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cadata=cert_pem)
    client_context.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)  # Python 3.13's default, checked here
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]
    client = client_context.wrap_bio(*pipes[0], server_hostname=server_hostname)
    server = server_context.wrap_bio(*pipes[1], server_side=True)
    done = {client: False, server: False}
    for _ in range(10):
        for end in (client, server):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        pipes[1][0].write(pipes[0][1].read())  # client -> server
        pipes[0][0].write(pipes[1][1].read())  # server -> client
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_certificate_names_the_address_and_verifies_as_its_own_anchor(tmp_path):
    cert_pem, key_pem = self_signed_certificate("127.0.0.1", days=30)
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(minutes=10) < certificate.not_valid_before_utc <= now
    minute = datetime.timedelta(minutes=1)
    assert certificate.not_valid_after_utc - now == pytest.approx(datetime.timedelta(days=30), abs=minute)
    handshake(cert_pem, key_pem, tmp_path, "127.0.0.1")
    # Positive control: the same certificate is refused for another address, and another key is refused.
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        handshake(cert_pem, key_pem, tmp_path, "127.0.0.2")
    with pytest.raises(ssl.SSLError):
        handshake(cert_pem, self_signed_certificate("127.0.0.1")[1], tmp_path, "127.0.0.1")


def test_ipv6_address_and_default_validity():
    cert_pem, key_pem = self_signed_certificate("fd00::11")
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("fd00::11")]
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days == 825
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----\n") and cert_pem.startswith("-----BEGIN CERTIFICATE-----\n")


def test_a_name_is_not_an_address():
    with pytest.raises(ValueError):
        self_signed_certificate("head.example")


def test_fingerprint_is_the_sha256_of_the_der_as_openssl_prints_it():
    cert_pem, _ = self_signed_certificate("10.0.0.1")
    fingerprint = certificate_fingerprint(cert_pem)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint)
    assert fingerprint.replace(":", "").lower() == hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()
    assert certificate_fingerprint(self_signed_certificate("10.0.0.1")[0]) != fingerprint  # a fresh key each time
