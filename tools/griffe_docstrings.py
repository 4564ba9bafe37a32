"""A griffe extension for the API reference: the docstrings' own conventions, read as Markdown.

The docstrings are Google style, and they head their doctests ``Example:`` (singular). Griffe's
Google parser knows only ``Examples:`` as the examples section and reads ``Example:`` as an
admonition of Markdown text, where a doctest's ``[...]`` output is taken for a reference link.
This extension renames the heading when griffe loads an object, so mkdocstrings renders the
doctests as Python code. The docstrings also cross-reference in Sphinx's roles
(``:func:`~convscope.data.default_workers```), which Markdown would print as they are: each
becomes a code span of the name as Sphinx shows it (the last part after a ``~``).
mkdocs.yml loads this file; nothing else imports it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|py:\w+):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class ProjectDocstrings(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` and Sphinx roles to code spans."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_role, text)
