"""Serve an atlas folder read-only over HTTP, for browsers or tools that want ``http://``.

The viewer works from ``file://`` without this; the server is a convenience.
It answers GET and HEAD only, serves only files inside the atlas (no ``..``,
no encoded slashes, no symlink leading outside), lists no directories, and
binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import os
import posixpath
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from convscope.atlas.format import read_manifest
from convscope.errors import AtlasError


class AtlasRequestHandler(SimpleHTTPRequestHandler):
    """A static, read-only handler rooted at ``directory`` (the atlas).

    Refused requests get 404 without saying why, so probing learns nothing.
    """

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
            ``/layers/features.0/hits.json`` -> ``ATLAS/layers/features.0/hits.json``;
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


def make_server(atlas_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A bound, not yet running server for an atlas; ``port=0`` picks a free port.

    Call ``serve_forever()`` on it (or ``handle_request()`` in tests) and
    ``server_close()`` when done; ``server.server_address`` gives the real port.

    Raises:
        AtlasError: ``atlas_dir`` is missing, has no manifest.json, or no index.html.

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
        return ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise AtlasError(
            f"cannot listen on {host}:{port}: {error.strerror}",
            hint="pick another port with --port, or stop what is using this one",
        ) from error


def serve(atlas_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve an atlas until interrupted (Ctrl-C), printing the address to open.

    Example:
        >>> serve(Path("atlas"), port=8000)  # doctest: +SKIP
    """
    server = make_server(atlas_dir, host, port)
    bound_host, bound_port = server.server_address[:2]
    print(f"serving {atlas_dir} at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
