"""The server certificate is reloaded from rotated files for the next TLS connection."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from webhook.admission import certs
from webhook.admission.server import https_server
from webhook.admission.tls import ReloadingTLS, TLSError

NOW = datetime.now(UTC)


def _bundle() -> certs.ServingBundle:
    return certs.build_serving_bundle(dns_names=["localhost"], now=NOW, days=2)


def _client_context(*bundles: certs.ServingBundle) -> ssl.SSLContext:
    return ssl.create_default_context(cadata="".join(b.ca_cert_pem.decode() for b in bundles))


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


async def _peer_certificate(port: int, client: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname="localhost"
    )
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    del reader
    return bytes(der)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[ReloadingTLS, int]]:
    certs.write_cert_dir(tmp_path, _bundle().files())
    tls = ReloadingTLS(tmp_path / certs.TLS_CERT_FILE, tmp_path / certs.TLS_KEY_FILE)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=tls.context)
    port = server.sockets[0].getsockname()[1]
    yield tls, port
    server.close()
    await server.wait_closed()


async def test_a_rotated_certificate_is_served_on_the_next_connection(
    tmp_path: Path, tls_server: tuple[ReloadingTLS, int]
) -> None:
    tls, port = tls_server
    first = certs.read_cert_dir(tmp_path)
    assert first is not None
    second = _bundle()
    client = _client_context(first, second)

    assert await _peer_certificate(port, client) == _der(first.serving.cert_pem)
    certs.write_cert_dir(tmp_path, second.files())
    assert await _peer_certificate(port, client) == _der(second.serving.cert_pem)
    assert tls.reloads == 1


async def test_a_half_written_rotation_keeps_the_old_certificate(
    tmp_path: Path, tls_server: tuple[ReloadingTLS, int]
) -> None:
    tls, port = tls_server
    first = certs.read_cert_dir(tmp_path)
    assert first is not None
    (tmp_path / "broken.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
    tls.cert_file = tmp_path / "broken.crt"

    assert await _peer_certificate(port, _client_context(first)) == _der(first.serving.cert_pem)
    assert tls.reloads == 0


def test_unloadable_files_at_start_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("nope")
    (tmp_path / "tls.key").write_text("nope")
    with pytest.raises(TLSError, match="cannot load TLS certificate"):
        ReloadingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")


async def test_uvicorn_serves_https_with_the_reloading_context(tmp_path: Path) -> None:
    first = _bundle()
    certs.write_cert_dir(tmp_path, first.files())
    tls = ReloadingTLS(tmp_path / certs.TLS_CERT_FILE, tmp_path / certs.TLS_KEY_FILE)
    app = FastAPI()

    @app.get("/scheme")
    async def scheme() -> dict[str, str]:
        return {"scheme": "https"}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections queue here until uvicorn accepts them: no wait for start-up
    port = sock.getsockname()[1]
    server = https_server(app, tls, host="127.0.0.1", port=port, lifespan="off")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    second = _bundle()
    try:
        client = _client_context(first, second)
        async with httpx.AsyncClient(verify=client) as http:
            response = await http.get(f"https://localhost:{port}/scheme")
            assert response.json() == {"scheme": "https"}
        certs.write_cert_dir(tmp_path, second.files())
        async with httpx.AsyncClient(verify=_client_context(second)) as http:
            assert (await http.get(f"https://localhost:{port}/scheme")).status_code == 200
    finally:
        server.should_exit = True
        await task
        sock.close()
