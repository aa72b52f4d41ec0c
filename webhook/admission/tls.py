"""A server TLS context that picks up rotated certificate files without a restart.

The context handed to uvicorn has an SNI callback, which OpenSSL runs on every ClientHello
(with or without a server name). The callback checks the files' identity (mtime, size, inode:
one ``stat`` per new connection, not per request) and, when they changed, loads them into a
fresh context and switches the handshake to it. Half-written files fail to load and leave the
previous certificate in use until the next handshake finds a complete pair.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class TLSError(RuntimeError):
    """The certificate or key files cannot be loaded."""


def _identity(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    result = []
    for path in paths:
        st = os.stat(path)  # follows the ..data links of a mounted Secret
        result.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(result)


def _load(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TLSError(f"cannot load TLS certificate {cert_file} with key {key_file}: {e}") from e
    return context


class ReloadingTLS:
    """Serves the certificate currently in ``cert_file``/``key_file``."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._identity = _identity((cert_file, key_file))
        self._current = _load(cert_file, key_file)
        self.reloads = 0
        self.context = _load(cert_file, key_file)
        self.context.sni_callback = self._on_client_hello

    def current(self) -> ssl.SSLContext:
        """The context for the next handshake, reloaded first if the files changed."""
        try:
            identity = _identity((self.cert_file, self.key_file))
        except OSError as e:
            log.warning("TLS files unreadable, keeping the loaded certificate: %s", e)
            return self._current
        if identity == self._identity:
            return self._current
        with self._lock:
            if identity != self._identity:
                try:
                    self._current = _load(self.cert_file, self.key_file)
                except TLSError as e:
                    log.warning("keeping the loaded certificate: %s", e)
                    return self._current
                self._identity = identity
                self.reloads += 1
                log.info("reloaded TLS certificate from %s", self.cert_file)
        return self._current

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        ssl_object.context = self.current()
