"""A self-signed CA and a serving certificate for the webhook, for tests, the demo and kind.

An apiserver calls admission webhooks over HTTPS only, and checks the serving certificate
against the ``caBundle`` of the ValidatingWebhookConfiguration. In production the certificate
comes from cert-manager (or any CA the cluster trusts); where there is none, this writes one::

    DIR/ca.crt    the CA certificate: base64 of it is the caBundle
    DIR/tls.crt   the serving certificate (SANs: every --dns name and IP), signed by the CA
    DIR/tls.key   its private key (mode 0600)

The names are those of a ``kubernetes.io/tls`` Secret (and of cert-manager's), so
``kubectl create secret generic webhook-tls --from-file=DIR`` mounts the same layout. The CA's
private key is not kept: nothing else is ever signed with it, so a new certificate means a new
CA and a new caBundle (which is what rotating a self-signed pair should mean anyway).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.errors import ConfigError

_BACKDATE = datetime.timedelta(minutes=5)  # tolerate a little clock skew between hosts


@dataclass(frozen=True)
class CertPaths:
    """Where `generate_certs` wrote the CA certificate and the serving pair."""

    ca_cert: Path
    tls_cert: Path
    tls_key: Path

    def ca_bundle(self) -> str:
        """The CA certificate as a ValidatingWebhookConfiguration's ``caBundle`` (base64 of PEM)."""
        return base64.b64encode(self.ca_cert.read_bytes()).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def generate_certs(
    directory: Path, *, names: Sequence[str], days: int = 365, now: datetime.datetime | None = None
) -> CertPaths:
    """Write a new CA and a serving certificate for ``names`` (DNS names or IP addresses).

    For a webhook behind a Service, the name the apiserver dials is ``SERVICE.NAMESPACE.svc``;
    for a URL clientConfig it is the URL's host (``127.0.0.1`` in the tests).
    """
    if not names:
        raise ConfigError("a serving certificate needs at least one DNS name or IP", hint="pass --dns NAME")
    if days < 1:
        raise ConfigError(f"--days {days}: a certificate must be valid for at least a day")
    try:
        sans = _subject_alt_names(names)
    except ValueError as exc:  # an IDN or otherwise unencodable DNS name
        raise ConfigError(f"--dns {list(names)!r}: {exc}") from None
    start = (now or datetime.datetime.now(datetime.UTC)) - _BACKDATE
    end = start + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("federation webhook CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.tls_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created 0600 from the start: never readable by others, not even for a moment.
    fd = os.open(paths.tls_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    os.chmod(paths.tls_key, 0o600)  # an existing file keeps its mode through O_TRUNC
    return paths


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """ECDSA keys only sign: the CA signs certificates, the serving key the TLS handshake."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
