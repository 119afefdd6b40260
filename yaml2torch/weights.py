"""Loading torchvision (or ultralytics) weights into generated models, position by position.

Twin blocks declare their parameters and buffers in torchvision's order and with its shapes,
so the i-th ``state_dict`` entry of the torchvision model is the i-th entry of ours. The names
differ (``features.3.conv.1.0.weight`` vs ``inverted_residualv2_3.1.depthwise.conv.weight``);
the shapes are checked one by one, and the first mismatch is reported by position and names.

The generated ``model.py`` never needs this module: the converted ``.pth`` uses its own names.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from yaml2torch.errors import WeightsError
from yaml2torch.files import import_file, write_atomic

if TYPE_CHECKING:
    import torch
    from torch import nn

    from yaml2torch.compiler import CompiledModel


def map_state_dict(
    reference_state_dict: Mapping[str, torch.Tensor], model_state_dict: Mapping[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """The reference tensors under the model's names, matched by position with exact shapes."""
    reference = list(reference_state_dict.items())
    ours = list(model_state_dict.items())
    for position, ((ref_key, ref_tensor), (our_key, our_tensor)) in enumerate(zip(reference, ours)):
        if tuple(ref_tensor.shape) != tuple(our_tensor.shape):
            raise WeightsError(
                f"state_dict entry {position} does not match: reference {ref_key!r} has shape "
                f"{tuple(ref_tensor.shape)}, model {our_key!r} has shape {tuple(our_tensor.shape)}"
            )
    if len(reference) != len(ours):
        longer, name = (reference, "reference") if len(reference) > len(ours) else (ours, "model")
        extra_key = longer[min(len(reference), len(ours))][0]
        raise WeightsError(
            f"state_dict lengths differ: reference has {len(reference)} entries, model has {len(ours)}; "
            f"the first unmatched entry is {name} {extra_key!r} at position {min(len(reference), len(ours))}"
        )
    return OrderedDict((our_key, ref_tensor) for (_, ref_tensor), (our_key, _) in zip(reference, ours))


def load_torchvision_weights(model: nn.Module, reference: nn.Module | Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy a torchvision model's (or state_dict's) weights into ``model`` by position; returns ``model``."""
    from torch import nn

    reference_state = reference.state_dict() if isinstance(reference, nn.Module) else reference
    model.load_state_dict(map_state_dict(reference_state, model.state_dict()), strict=True)
    return model


def load_reference_weights(model: nn.Module, reference: nn.Module | Mapping[str, torch.Tensor]) -> nn.Module:
    """The same by-position copy for any twin's reference: a torchvision or ultralytics model
    (``ClassificationModel``, or its ``state_dict()``), whose layout the twin blocks follow."""
    return load_torchvision_weights(model, reference)


def import_model_source(source: str) -> ModuleType:
    """Import a generated model.py from its source via a temporary file (the way users import it)."""
    with tempfile.TemporaryDirectory(prefix="yaml2torch-") as folder:
        path = Path(folder) / "model.py"
        path.write_text(source, encoding="utf-8")
        return import_file(path)


def read_state_dict(weights_path: Path) -> Mapping[str, torch.Tensor]:
    """A plain state_dict from a ``torch.save`` file (tensors only; no pickled code is run)."""
    import torch

    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: no such weights file")
    try:
        loaded = torch.load(weights_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message is a page long; the gist is that only tensors and containers load
        raise WeightsError(
            f"{weights_path}: cannot read weights: not a torch.save file of plain tensors "
            "(or it holds other objects, which are never unpickled)"
        ) from None
    except (OSError, EOFError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{weights_path}: cannot read weights: {first_line}") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes break torch's unpickler in many ways (IndexError, KeyError ...)
        raise WeightsError(
            f"{weights_path}: cannot read weights: not a torch.save file ({type(exc).__name__} while reading it)"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise WeightsError(f"{weights_path}: expected a state_dict (a mapping of names to tensors)")
    return loaded


def convert_weights_file(
    compiled: CompiledModel, weights_path: Path, out_path: Path, class_name: str = "Model"
) -> Path:
    """Map a torchvision state_dict file onto the compiled model and save it under our names."""
    import torch

    reference = read_state_dict(Path(weights_path))
    module = import_model_source(compiled.source)
    with torch.device("meta"):  # shapes and order only: no memory, no initialisation cost
        model = getattr(module, class_name)()
    mapped = map_state_dict(reference, model.state_dict())
    buffer = io.BytesIO()
    torch.save(mapped, buffer)
    out_path = Path(out_path)
    write_atomic(out_path, buffer.getvalue())
    return out_path
