"""One exception family for everything a user can get wrong.

Every message says what went wrong *and what to do next*; the CLI prints the
message alone (no traceback unless ``--debug``) and exits non-zero.
"""

from __future__ import annotations


class ConvscopeError(Exception):
    """Base class: a problem with the user's input that they can fix.

    Args:
        message: what went wrong, in one sentence.
        hint: what to do about it (a command, a flag, a file to check).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  hint: {hint}")


class ModelError(ConvscopeError):
    """The model source cannot be loaded or built."""


class WeightsError(ConvscopeError):
    """The weights file is missing, unreadable or does not fit the model."""


class LayerError(ConvscopeError):
    """A requested layer does not exist or cannot be observed."""


class DataError(ConvscopeError):
    """The image folder is missing, empty or holds no readable image."""


class GeometryError(ConvscopeError):
    """The input is too small for the network, or a receptive field is undefined."""


class AtlasError(ConvscopeError):
    """An atlas folder is missing, of an unknown version, or inconsistent."""


class ConvscopeWarning(UserWarning):
    """Something worth knowing that does not stop the job (fewer images than k, ...)."""
