"""A renewed serving pair is served without a restart: real TLS handshakes on loopback before and
after the files change, the old pair kept when the new one does not load."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from federation.server import access
from federation.server.certs import generate_certs
from federation.server.tlsreload import CertReloader

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[Path, ssl.SSLContext, int]]:
    """A loopback TLS server on the context the controller's port would use."""
    serving = tmp_path / "serving"
    paths = generate_certs(serving, names=["127.0.0.1"])
    ctx = access.server_ssl_context(cert=paths.tls_cert, key=paths.tls_key, client_ca=None)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield serving, ctx, port
    finally:
        server.close()
        await server.wait_closed()


async def served_serial(port: int, ca: Path) -> int:
    """The serial of the certificate a new handshake gets (verified against `ca`)."""
    client = ssl.create_default_context(cafile=str(ca))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert await reader.read() == b"ok"
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_a_renewed_pair_is_served_by_the_next_handshake(
    tls_server: tuple[Path, ssl.SSLContext, int], tmp_path: Path
) -> None:
    serving, ctx, port = tls_server
    reloader = CertReloader(ctx, cert=serving / "tls.crt", key=serving / "tls.key")
    shutil.copy(serving / "ca.crt", tmp_path / "old-ca.crt")
    first = await served_serial(port, tmp_path / "old-ca.crt")
    assert not reloader.check()  # nothing changed

    # Renewal as a Secret volume does it: new files in a new directory, then one rename.
    staged = generate_certs(tmp_path / "staged", names=["127.0.0.1"])
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (staged.tls_cert.parent / name).replace(serving / name)
    new_serial = x509.load_pem_x509_certificate((serving / "tls.crt").read_bytes()).serial_number
    assert new_serial != first
    # Until it is reloaded, the old pair is still what a client gets.
    assert await served_serial(port, tmp_path / "old-ca.crt") == first

    assert reloader.check()
    assert await served_serial(port, serving / "ca.crt") == new_serial
    with pytest.raises(ssl.SSLCertVerificationError):
        await served_serial(port, tmp_path / "old-ca.crt")  # the old CA no longer vouches for it


async def test_a_pair_that_does_not_load_leaves_the_old_one_serving(
    tls_server: tuple[Path, ssl.SSLContext, int], tmp_path: Path
) -> None:
    serving, ctx, port = tls_server
    reloader = CertReloader(ctx, cert=serving / "tls.crt", key=serving / "tls.key")
    before = await served_serial(port, serving / "ca.crt")
    other = generate_certs(tmp_path / "other", names=["127.0.0.1"])
    (serving / "tls.key").write_bytes(other.tls_key.read_bytes())  # half-renewed: key ≠ cert
    assert not reloader.check()
    assert await served_serial(port, serving / "ca.crt") == before
    # The matching certificate arrives: the next check picks up the whole pair.
    (serving / "tls.crt").write_bytes(other.tls_cert.read_bytes())
    assert reloader.check()
    assert await served_serial(port, other.ca_cert) != before
