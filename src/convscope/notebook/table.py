"""A table as named numpy columns: one row per layer or unit, pandas only if it is installed, HTML in Jupyter."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from convscope.errors import ConvscopeError
from convscope.notebook.html import FONT, INK, MUTED, PAPER, RULE, esc, number


@dataclass(frozen=True)
class Table(Mapping[str, np.ndarray]):
    """Named columns of equal length, read-only, in order; a mapping from name to column.

    Attributes:
        columns: ``name -> (rows,)`` array (read-only copies). Numbers missing in the
            atlas are NaN in float columns, ``-1`` in index columns and ``None`` in
            object (text) columns.

    ``len(table)`` and iteration follow the mapping (the column names); :attr:`rows`
    is the number of rows.

    Example:
        >>> table = Table({"layer": np.array(["conv1", "conv2"], dtype=object), "dead": np.array([0.0, 0.25])})
        >>> table.rows, list(table), table["dead"].tolist()
        (2, ['layer', 'dead'], [0.0, 0.25])
        >>> table.row(1)
        {'layer': 'conv2', 'dead': 0.25}
    """

    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        frozen = {}
        for name, column in self.columns.items():
            array = np.array(column, copy=True)
            if array.ndim != 1:
                raise ValueError(f"column {name!r} has shape {array.shape}; a table's columns are 1-D")
            array.flags.writeable = False
            frozen[name] = array
        lengths = {len(c) for c in frozen.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: { {n: len(c) for n, c in frozen.items()} }")
        object.__setattr__(self, "columns", frozen)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def rows(self) -> int:
        """The number of rows."""
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index`` as ``name -> Python value``."""
        return {name: column[index].item() if hasattr(column[index], "item") else column[index] for name, column in self.columns.items()}

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` (pandas is not a convscope dependency).

        Raises:
            ConvscopeError: pandas is not installed.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError as error:
            raise ConvscopeError(
                "pandas is not installed, so the table cannot become a DataFrame",
                hint="`pip install pandas`, or use the table's numpy columns directly (table['name'])",
            ) from error
        return pandas.DataFrame({name: column for name, column in self.columns.items()})

    def __repr__(self) -> str:
        return f"Table({self.rows} rows: {', '.join(self.columns)})"

    def to_html(self, max_rows: int = 60) -> str:
        """The table as an HTML table (numbers to 3 significant digits, the first ``max_rows``
        rows and a note of the rest).

        Example:
            >>> print(Table({"layer": np.array(["<a>"], dtype=object), "dead": np.array([0.5])}).to_html().count("<td"))
            2
        """
        cell = f"padding: 2px 8px; border-bottom: 1px solid {RULE}; white-space: nowrap; font-variant-numeric: tabular-nums"
        align = {name: "left" if self[name].dtype == object else "right" for name in self}
        head = "".join(f'<th style="{cell}; text-align: {align[name]}; color: {MUTED}; font-weight: 600">{esc(name)}</th>' for name in self)
        body = []
        for i in range(min(self.rows, max_rows)):
            values = "".join(f'<td style="{cell}; text-align: {align[name]}">{esc(_cell(self[name][i]))}</td>' for name in self)
            body.append(f"<tr>{values}</tr>")
        rest = self.rows - max_rows
        note = f'<div style="color: {MUTED}; margin-top: 4px">{rest} more rows; the columns hold them all</div>' if rest > 0 else ""
        return (
            f'<div style="{FONT}; font-size: 12px; color: {INK}; background: {PAPER}; overflow-x: auto">'
            f'<table style="border-collapse: collapse; width: auto"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{note}</div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def _cell(value: Any) -> str:
    """A table cell's text: ``"–"`` for ``None``, yes/no for booleans, numbers to 3 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return number(float(value))
    return str(value)
