"""An atlas as the source of an explanation: its model, weights, preprocessing and layers.

The manifest records the model source, the weights (a file or a torchvision weights name) with
the file's SHA-256, the preprocessing and every layer with its receptive fields. The weights file
must still be the one the atlas was made with: a file whose digest differs is refused, since the
atlas's unit pictures would then show other units than the ones explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convscope.atlas.format import read_manifest
from convscope.errors import AtlasError, LayerError, WeightsError
from convscope.network.geometry import UnitFields
from convscope.network.layers import NCHW, LayerInfo, select_layers
from convscope.network.load import load_network
from convscope.network.network import Network
from convscope.network.preprocess import Preprocess
from convscope.network.weights import file_sha256


@dataclass(frozen=True)
class AtlasSource:
    """The network an atlas was made with, and its layers as the atlas recorded them."""

    atlas: Path
    network: Network
    layers: tuple[LayerInfo, ...]

    def pick(self, requested: Sequence[str] | None) -> list[LayerInfo]:
        """The atlas's layers named in ``requested`` (default: all of them), in the order asked.

        Raises:
            LayerError: a name is not one of the atlas's layers.
        """
        known = {info.name: info for info in self.layers}
        if not requested:
            return list(self.layers)
        missing = [name for name in requested if name not in known]
        if missing:
            raise LayerError(
                f"the atlas {self.atlas} has no layer {', '.join(map(repr, missing))}",
                hint=f"pick among the atlas's layers: {', '.join(known)}; or explain with the model instead of the atlas",
            )
        return [known[name] for name in dict.fromkeys(requested)]


def layer_info(entry: dict[str, Any]) -> LayerInfo:
    """A manifest's layer entry (``LayerInfo.to_dict``) back as a :class:`LayerInfo`."""
    fields = entry.get("receptive_fields")
    if fields is None and entry.get("receptive_field") is not None:  # older atlases: one field per layer
        fields = [{"units": [0, int(entry["shape"][0])], **entry["receptive_field"]}]
    dims = entry.get("dims")
    return LayerInfo(
        name=str(entry["name"]), type=str(entry.get("type", "")), shape=tuple(int(v) for v in entry["shape"]),  # type: ignore[arg-type]
        fields=UnitFields.from_list(fields) if fields else None, dims=tuple(dims) if dims else NCHW,  # type: ignore[arg-type]
    )


def atlas_source(atlas: str | Path, weights: str | Path | None = None) -> AtlasSource:
    """Load the network that ``atlas`` was made with.

    Args:
        atlas: the atlas folder (holding ``manifest.json``).
        weights: where the weights file is now, if it moved (checked against the recorded SHA-256).

    Raises:
        AtlasError: not an atlas, or one made with random weights (which cannot be rebuilt).
        WeightsError: the weights file is missing, or its SHA-256 differs from the atlas's.

    Example:
        >>> source = atlas_source("atlas")  # doctest: +SKIP
        >>> [info.name for info in source.layers]  # doctest: +SKIP
        ['features.0', 'features.3']
    """
    atlas = Path(atlas)
    manifest = read_manifest(atlas)
    model = manifest.get("model") or {}
    source, recorded, digest = model.get("source"), model.get("weights"), model.get("weights_sha256")
    if not source:
        raise AtlasError(f"{atlas}'s manifest names no model source", hint="rebuild the atlas with `convscope atlas`")
    chosen = weights if weights is not None else recorded
    if chosen is None:
        raise AtlasError(
            f"the atlas {atlas} was made with random weights, which cannot be rebuilt",
            hint=f"explain with the model instead: `convscope explain {source} IMAGE --weights FILE`",
        )
    if digest is not None:
        path = Path(chosen)
        if not path.is_file():
            raise WeightsError(
                f"the atlas's weights file {path} does not exist",
                hint="pass where it is now with --weights FILE (it must be the same file: its SHA-256 is checked)",
            )
        found = file_sha256(path)
        if found != digest:
            raise WeightsError(
                f"the weights file {path} is not the one the atlas {atlas} was made with "
                f"(SHA-256 {found[:12]}... vs recorded {digest[:12]}...)",
                hint="pass the original file with --weights FILE, or rebuild the atlas with these weights",
            )
    preprocess = Preprocess.from_dict(manifest["preprocess"]) if manifest.get("preprocess") else None
    network = load_network(source, chosen, preprocess=preprocess)
    names = model.get("class_names")
    if names:
        network = replace(network, class_names=tuple(names))
    layers = tuple(layer_info(entry) for entry in manifest["layers"])
    return AtlasSource(atlas, network, layers)


def network_and_layers(
    network_or_atlas: Network | AtlasSource | str | Path,
    layers: Sequence[str] | Sequence[LayerInfo] | None = None,
    weights: str | Path | None = None,
) -> tuple[Network, list[LayerInfo], Path | None]:
    """What an explanation runs on: the network, its layers and the atlas folder (``None`` for a
    bare network), from a :class:`Network` (``layers`` names, :class:`LayerInfo` records, or
    ``None``: its default layers), an opened :class:`AtlasSource`, or an atlas folder (its
    layers; ``weights``: where its weights file is now).

    Raises:
        LayerError: an unknown layer, or one the atlas lacks.
        AtlasError, WeightsError: as :func:`atlas_source`.
    """
    if isinstance(network_or_atlas, Network):
        if layers and all(isinstance(item, LayerInfo) for item in layers):
            return network_or_atlas, list(layers), None  # type: ignore[arg-type]
        names = [str(getattr(item, "name", item)) for item in layers] if layers else None
        return network_or_atlas, select_layers(network_or_atlas.model, names, network_or_atlas.preprocess.input_size), None
    source = network_or_atlas if isinstance(network_or_atlas, AtlasSource) else atlas_source(network_or_atlas, weights)
    infos = source.pick([str(getattr(item, "name", item)) for item in layers] if layers else None)
    return source.network, infos, source.atlas.absolute()
