"""An MkDocs hook for the tutorial notebooks that mkdocs-jupyter renders (``hooks:`` in mkdocs.yml).

mkdocs-jupyter turns a notebook into HTML itself, so MkDocs neither checks nor rewrites its
links, and nbconvert's template adds scripts that load MathJax and Mermaid from CDNs. On every
notebook page this hook:

- rewrites each relative link to a page of the site (``../guides/explain.md``,
  ``squeezenet-imagenet.ipynb``, with or without ``#anchor``) to that page's URL, and warns
  (which fails ``mkdocs build --strict``) when it points at no page;
- removes the MathJax and Mermaid scripts (the tutorials have neither formulas nor diagrams),
  so the page fetches nothing from the network, and warns if any other script still would.
"""

from __future__ import annotations

import logging
import posixpath
import re

log = logging.getLogger("mkdocs.hooks.notebooks")

_LINK = re.compile(r'href="(?![a-z][\w+.-]*:|#|/)([^"#]+\.(?:md|ipynb))(#[^"]*)?"')
_SCRIPTS = [
    re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S),
    re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
               r"const diagrams = document\.querySelectorAll\(\"\.jp-Mermaid.*?</script>", re.S),
]
_REMOTE = re.compile(r"""(?:src=|import\(|Url = )["'](?:https?:)?//""")


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    for script in _SCRIPTS:
        html, found = script.subn("", html)
        if found != 1:
            log.warning(f"{page.file.src_uri}: mkdocs-jupyter's template changed: a script to remove was found {found} times")
    if _REMOTE.search(html):
        log.warning(f"{page.file.src_uri}: still loads something from the network: {_REMOTE.search(html)[0]}")

    def link(match: re.Match) -> str:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match[1]))
        target = files.get_file_from_path(path)
        if target is None:
            log.warning(f"{page.file.src_uri}: a link points at {match[1]!r}, which is not a page of the site")
            return match[0]
        return f'href="{target.url_relative_to(page.file)}{match[2] or ""}"'

    return _LINK.sub(link, html)
