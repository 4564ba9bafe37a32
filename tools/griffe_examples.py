"""A griffe extension for the API reference: the project's ``Example:`` sections are examples.

The docstrings are Google style, and they head their doctests ``Example:`` (singular). Griffe's
Google parser knows only ``Examples:`` as the examples section and reads ``Example:`` as an
admonition of Markdown text, where a doctest's ``[...]`` output is taken for a reference link.
This extension renames the heading when griffe loads an object, so mkdocstrings renders the
doctests as Python code (mkdocs.yml loads it; nothing else imports it).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
