"""The read-only atlas server: what it serves, what it refuses, and its errors."""

from __future__ import annotations

import inspect
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from convscope.atlas.serve import make_server, serve
from convscope.atlas.viewer import write_viewer
from convscope.errors import AtlasError
from make_atlas import make_atlas

SECRET = "top secret outside the atlas"


@pytest.fixture(scope="module")
def server_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A running server over a small atlas with a secret file beside it and symlinks in it."""
    base = tmp_path_factory.mktemp("served")
    root = make_atlas(base / "atlas", [("features.0", 2, 2, 2)])
    write_viewer(root)
    (base / "secret.txt").write_text(SECRET)
    (root / "leak.txt").symlink_to(base / "secret.txt")
    (root / "leakdir").symlink_to(base)
    (root / "inside.json").symlink_to(root / "manifest.json")
    server = make_server(root, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


def raw_request(address: tuple[str, int], line: str) -> tuple[int, bytes]:
    """Send one request line exactly as written; return (status, whole response)."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(f"{line}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1"))
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1]), response


@pytest.mark.parametrize("path", ["/", "/index.html", "/manifest.json", "/layers/features.0/units/0000.png",
                                  "/viewer/data/layer-0.js", "/inside.json", "/index.html?x=1#y"])
def test_serves_files_inside_the_atlas(server_address: tuple[str, int], path: str) -> None:
    status, response = raw_request(server_address, f"GET {path} HTTP/1.1")
    assert status == 200
    assert b"X-Content-Type-Options: nosniff" in response


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/layers/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
    "/layers/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/layers%2f..%2f..%2fsecret.txt",
    "/..%5csecret.txt", "/leak.txt", "/leakdir/secret.txt", "//etc/passwd", "/%ff", "/manifest.json%00",
])
def test_refuses_paths_leaving_the_atlas(server_address: tuple[str, int], path: str) -> None:
    status, response = raw_request(server_address, f"GET {path} HTTP/1.1")
    assert status == 404
    assert SECRET.encode() not in response


def test_no_directory_listing_and_read_only(server_address: tuple[str, int]) -> None:
    status, response = raw_request(server_address, "GET /layers/features.0/ HTTP/1.1")
    assert status == 404 and b"0000.png" not in response
    status, _ = raw_request(server_address, "POST /manifest.json HTTP/1.1")
    assert status == 501
    status, _ = raw_request(server_address, "PUT /new.txt HTTP/1.1")
    assert status == 501
    status, response = raw_request(server_address, "HEAD /manifest.json HTTP/1.1")
    assert status == 200 and response.endswith(b"\r\n\r\n")


def test_binds_localhost_by_default(tmp_path: Path) -> None:
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    root = make_atlas(tmp_path / "atlas", [("features.0", 1, 2, 2)])
    write_viewer(root)
    server = make_server(root, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_missing_atlas_manifest_or_viewer_raises(tmp_path: Path) -> None:
    with pytest.raises(AtlasError, match="no atlas folder"):
        make_server(tmp_path / "nowhere", port=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="no manifest.json") as error:
        make_server(tmp_path / "empty", port=0)
    assert error.value.hint
    root = make_atlas(tmp_path / "atlas", [("features.0", 1, 2, 2)])
    with pytest.raises(AtlasError, match="no index.html"):
        make_server(root, port=0)


# --- DNS rebinding: only requests addressed to this machine by name or bound address ---


def host_request(address: tuple[str, int], host: str | None, method: str = "GET", path: str = "/manifest.json") -> tuple[int, bytes]:
    """One request through http.client with ``Host: host`` (None: no Host header at all)."""
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "localhost:9999",
                                  "[::1]", "[::1]:{port}"])
def test_loopback_and_bound_host_names_are_served(server_address: tuple[str, int], host: str) -> None:
    status, body = host_request(server_address, host.format(port=server_address[1]))
    assert status == 200 and b'"format": "convscope-atlas"' in body


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:{port}", "127.0.0.1.evil.example.com:{port}",
                                  "localhost.evil.example.com", "10.0.0.7:{port}", "", "localhost:x", "[::1",
                                  "localhost:{port}@evil.example.com"])
@pytest.mark.parametrize("path", ["/manifest.json", "/", "/layers/features.0/units/0000.png", "/nothing-here"])
def test_foreign_host_headers_get_403_and_no_atlas_content(server_address: tuple[str, int], host: str, path: str) -> None:
    status, body = host_request(server_address, host.format(port=server_address[1]), path=path)
    assert status in (400, 403)
    assert b"convscope-atlas" not in body and b"<script" not in body and b"PNG" not in body


def test_missing_or_doubled_host_header_is_refused(server_address: tuple[str, int]) -> None:
    status, body = host_request(server_address, None)
    assert status == 400 and b"convscope-atlas" not in body
    status, response = raw_request(server_address, "GET /manifest.json HTTP/1.1\r\nHost: evil.example.com")
    assert status == 400 and b"convscope-atlas" not in response  # a second Host header besides localhost
    status, _ = host_request(server_address, "evil.example.com", method="HEAD")
    assert status == 403


def test_host_allowed_by_bound_address() -> None:
    from convscope.atlas.serve import host_allowed

    assert host_allowed("192.168.1.5:8000", "192.168.1.5") and not host_allowed("192.168.1.6:8000", "192.168.1.5")
    assert host_allowed("localhost", "192.168.1.5")  # loopback names always mean this machine
    assert host_allowed("192.168.1.5", "0.0.0.0") and host_allowed("[fe80::1]:80", "::")  # IP literals on a wildcard
    assert not host_allowed("evil.example.com", "0.0.0.0") and not host_allowed("my-laptop.local", "0.0.0.0")
    assert not host_allowed("evil.example.com", "127.0.0.1")


def test_binding_beyond_loopback_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types
    import warnings

    import convscope.atlas.serve as serve_module
    from convscope.errors import ConvscopeWarning

    root = make_atlas(tmp_path / "atlas", [("features.0", 1, 2, 2)])
    write_viewer(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loopback: no warning
        make_server(root, host="127.0.0.1", port=0).server_close()
        make_server(root, host="localhost", port=0).server_close()

    def unbound(address: tuple[str, int], handler: object) -> object:  # the tests never listen beyond loopback
        return types.SimpleNamespace(server_address=(address[0], 8000), server_close=lambda: None)

    monkeypatch.setattr(serve_module, "_Server", unbound)
    for host, where in (("0.0.0.0", "every network interface"), ("::", "every network interface"),
                        ("192.168.1.5", "the network address 192.168.1.5")):  # fmt: skip
        with pytest.warns(ConvscopeWarning, match=where) as record:
            make_server(root, host=host, port=0)
        assert "127.0.0.1" in str(record[0].message)
