"""Serve an atlas folder read-only over HTTP, for browsers or tools that want ``http://``.

The viewer works from ``file://`` without this; the server is a convenience.
It answers GET and HEAD only, serves only files inside the atlas (no ``..``,
no encoded slashes, no symlink leading outside), lists no directories, and
binds 127.0.0.1 unless told otherwise.

It also refuses (403) any request whose ``Host`` header is not this machine by a
loopback name (``localhost``, ``127.0.0.1``, ``[::1]``) or the exact address it is
bound to, with any port: otherwise a web page could rebind its own domain name to
127.0.0.1 (DNS rebinding) and read the user's images through the browser. A
request without a Host header is refused (400). Bound to every interface
(``0.0.0.0`` or ``::``), it also accepts any IP address literal as Host (a
rebinding page always sends its domain name, never an IP); binding beyond the
loopback warns, since anyone on the network can then read the atlas.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import socket
import sys
import warnings
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from convscope.atlas.format import read_manifest
from convscope.errors import AtlasError, ConvscopeWarning

#: Host names that always mean this machine.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class AtlasRequestHandler(SimpleHTTPRequestHandler):
    """A static, read-only handler rooted at ``directory`` (the atlas).

    Refused paths get 404 without saying why, so probing learns nothing; a foreign
    Host header gets 403 before any path is looked at.
    """

    def parse_request(self) -> bool:
        """Parse as usual, then refuse a missing or foreign ``Host`` (see the module's docstring)."""
        if not super().parse_request():
            return False
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            self.send_error(HTTPStatus.BAD_REQUEST, "A single Host header is required")
            return False
        if not host_allowed(hosts[0], str(self.server.server_address[0])):
            self.send_error(HTTPStatus.FORBIDDEN, "Host not allowed; open the atlas at http://127.0.0.1:PORT/")
            return False
        return True

    def send_head(self):  # type: ignore[override]  # signature of the base class
        """Refuse any path that does not resolve to a file or folder inside the atlas."""
        if self.resolve(self.path) is None:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        """The file system path for a URL path; a path that cannot exist when refused."""
        resolved = self.resolve(path)
        return str(resolved) if resolved is not None else os.devnull + "/refused"

    def resolve(self, url_path: str) -> Path | None:
        """The real path inside the atlas that ``url_path`` names, or None to refuse it.

        Example:
            ``/layers/features.0/hits.js`` -> ``ATLAS/layers/features.0/hits.js``;
            ``/../etc/passwd``, ``/%2e%2e/x``, ``/a%2fb`` and symlinks out -> None.
        """
        raw = urlsplit(url_path).path
        if not raw.startswith("/") or raw.startswith("//"):
            return None
        lowered = raw.lower()
        if "%2f" in lowered or "%5c" in lowered or "%00" in lowered:
            return None
        try:
            parts = unquote(raw, errors="strict").split("/")
        except UnicodeDecodeError:
            return None
        if any(part in ("..", ".") or "\\" in part or "\0" in part for part in parts):
            return None
        root = Path(self.directory).resolve()
        target = (root / posixpath.join(*[part for part in parts if part] or ["."])).resolve()
        if not target.is_relative_to(root):
            return None
        return target

    def list_directory(self, path):  # type: ignore[override]  # signature of the base class
        """No directory listings: a folder without index.html is not found."""
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def end_headers(self) -> None:
        """Add headers that stop content sniffing and outside requests."""
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def host_allowed(header: str, bound: str) -> bool:
    """Whether a ``Host`` header names this server: a loopback name or the bound address.

    ``bound`` is the address the server listens on. Any port is accepted (an SSH
    tunnel or a proxy may change it); the name is compared case-insensitively.

    Example:
        >>> host_allowed("localhost:8000", "127.0.0.1"), host_allowed("evil.example.com:8000", "127.0.0.1")
        (True, False)
        >>> host_allowed("[::1]:8000", "127.0.0.1"), host_allowed("192.168.1.5:8000", "0.0.0.0")
        (True, True)
    """
    name = _host_name(header.strip().lower())
    if name is None:
        return False
    if name in LOOPBACK_HOSTS or name == bound.lower():
        return True
    if _is_wildcard(bound):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True
    return False


def _host_name(header: str) -> str | None:
    """The name of ``host[:port]`` or ``[v6]:port`` (brackets removed); None if malformed."""
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1 :]
    else:
        name, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return name or None


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    """A threading HTTP server on IPv4, or IPv6 for a host with a colon (``::1``, ``::``)."""

    def __init__(self, address: tuple[str, int], handler) -> None:  # type: ignore[no-untyped-def]
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def make_server(atlas_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A bound, not yet running server for an atlas; ``port=0`` picks a free port.

    Call ``serve_forever()`` on it (or ``handle_request()`` in tests) and
    ``server_close()`` when done; ``server.server_address`` gives the real port.

    Raises:
        AtlasError: ``atlas_dir`` is missing, has no manifest.json, or no index.html.

    Warns:
        ConvscopeWarning: the server listens beyond the loopback (``0.0.0.0``, ``::``
            or a network address), so other machines can read the atlas.

    Example:
        >>> server = make_server(Path("atlas"), port=0)  # doctest: +SKIP
        >>> host, port = server.server_address[:2]  # doctest: +SKIP
    """
    atlas_dir = Path(atlas_dir)
    read_manifest(atlas_dir)
    if not (atlas_dir / "index.html").is_file():
        raise AtlasError(
            f"{atlas_dir} has no index.html",
            hint=f"write the viewer with convscope.atlas.viewer.write_viewer(Path({str(atlas_dir)!r}))",
        )
    handler = partial(AtlasRequestHandler, directory=str(atlas_dir.resolve()))
    try:
        server = _Server((host.strip("[]"), port), handler)
    except OSError as error:
        raise AtlasError(
            f"cannot listen on {host}:{port}: {error.strerror}",
            hint="pick another port with --port, or stop what is using this one",
        ) from error
    bound = str(server.server_address[0])
    if not _is_loopback(bound):
        where = "every network interface" if _is_wildcard(bound) else f"the network address {bound}"
        warnings.warn(
            f"serving {atlas_dir} on {where}: anyone who can reach this machine can read the atlas and its "
            "images; leave out --host to serve this machine only (127.0.0.1)",
            ConvscopeWarning,
            stacklevel=2,
        )
    return server


def serve(atlas_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve an atlas until interrupted (Ctrl-C), printing the address to open.

    Example:
        >>> serve(Path("atlas"), port=8000)  # doctest: +SKIP
    """
    server = make_server(atlas_dir, host, port)
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    print(f"serving {atlas_dir} at http://{shown}:{bound_port}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
