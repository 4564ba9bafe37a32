"""Progress bars: tqdm's notebook widget in Jupyter where ipywidgets is installed, its text bar
everywhere else.

``tqdm.auto`` picks the same way, but in a Jupyter kernel without ipywidgets it warns
("IProgress not found") as soon as it is imported; here the choice is made when a bar is made,
quietly, and the text bar (which Jupyter shows fine) is the fallback.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.std import tqdm as text_bar


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (tqdm's own test: ``ipykernel.zmqshell`` is
    loaded) that has ipywidgets, which the notebook bar needs."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(*args: Any, **kwargs: Any) -> text_bar:
    """A tqdm bar (same arguments as ``tqdm.tqdm``): the notebook widget in Jupyter with
    ipywidgets, the text bar otherwise.

    Example:
        >>> with progress_bar(range(3), disable=True) as bar:
        ...     total = sum(bar)
        >>> total
        3
    """
    if in_notebook():  # tqdm.auto, which ipywidgets keeps quiet, still tells a notebook from a Qt console
        from tqdm.auto import tqdm as auto_bar

        return auto_bar(*args, **kwargs)
    return text_bar(*args, **kwargs)
