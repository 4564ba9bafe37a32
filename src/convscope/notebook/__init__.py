"""convscope.notebook: an atlas in Python and Jupyter.

:func:`open_atlas` gives an :class:`Atlas` over an atlas folder that reads lazily: the
manifest at once, a layer's hits when its units are asked for, images when pictures are.
Layers and units give their hits, statistics (numpy arrays, or a :class:`Table`) and
patches (PIL images cut as the viewer cuts them); in Jupyter each shows itself inline
(a unit card, a layer grid, the atlas's layer table) without a server.
"""

from convscope.notebook.atlas import Atlas, open_atlas
from convscope.notebook.layer import Layer
from convscope.notebook.records import Hit, Label
from convscope.notebook.table import Table
from convscope.notebook.unit import Unit

__all__ = ["Atlas", "Hit", "Label", "Layer", "Table", "Unit", "open_atlas"]
