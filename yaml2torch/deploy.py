"""``yaml2torch export``: a compiled spec plus its trained weights as ONNX or a ``torch.export`` program.

Both formats get a dynamic batch dimension and the model's own preprocessing (a spec with
``normalize:`` takes inputs in [0, 1]). The file is written atomically: complete or absent.
ONNX needs the ``onnx`` and ``onnxscript`` packages (``pip install 'yaml2torch[export]'``);
``.pt2`` needs only torch.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml2torch.compiler import CompiledModel
from yaml2torch.errors import UsageError, WeightsError
from yaml2torch.files import write_atomic
from yaml2torch.weights import import_model_source, read_state_dict

FORMATS = {".onnx": "ONNX", ".pt2": "torch.export"}
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    input_shape: tuple[int, ...]  # (C, H, W); the batch dimension is dynamic


def export_format(path: Path) -> str:
    if path.suffix not in FORMATS:
        raise UsageError(f"-o {path}: the file name must end in {' or '.join(FORMATS)} (the format)")
    return FORMATS[path.suffix]


def load_trained_model(compiled: CompiledModel, weights: Path) -> Any:
    """The generated model, imported from its source, with ``weights`` loaded, in eval mode."""
    model = import_model_source(compiled.source).Model()
    state = read_state_dict(weights)  # one-line errors for a missing or unreadable file
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0])[:200]  # line 0 is torch's "Error(s) in loading"
        raise WeightsError(f"{weights}: does not fit the model of {compiled.ir.spec_path}: {detail}") from None
    return model.eval()


def export_model(compiled: CompiledModel, weights: Path, output: Path) -> Exported:
    """Export the trained model to ``output`` (``.onnx`` or ``.pt2``) with a dynamic batch size."""
    import torch

    kind = export_format(output)
    dims = compiled.ir.input_shape.dims
    if not compiled.ir.input_size_known or any(d is None for d in dims):
        raise UsageError(f"{compiled.ir.spec_path}: export needs the input size; add input_size: [H, W] to the spec")
    shape = tuple(int(d) for d in dims if d is not None)
    model = load_trained_model(compiled, weights)
    example = (torch.rand(2, *shape),)  # batch 2: a batch of 1 would be specialised away
    dynamic = ({0: torch.export.Dim("batch")},)
    with tempfile.TemporaryDirectory(prefix="yaml2torch-export-") as folder:
        target = Path(folder) / f"model{output.suffix}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter; failures still raise
            if kind == "ONNX":
                _export_onnx(model, example, dynamic, target)
            else:
                torch.export.save(torch.export.export(model, example, dynamic_shapes=dynamic), str(target))
        write_atomic(output, target.read_bytes())
    return Exported(output, kind, shape)


def _export_onnx(model: Any, example: tuple[Any, ...], dynamic: tuple[dict[int, Any], ...], target: Path) -> None:
    import torch

    try:
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError:
        raise UsageError("ONNX export needs onnx and onnxscript: pip install 'yaml2torch[export]' (or use -o model.pt2)") from None
    torch.onnx.export(
        model,
        example,
        str(target),
        dynamo=True,
        dynamic_shapes=dynamic,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        external_data=False,  # one self-contained file (ONNX's limit: 2 GB of weights)
        verbose=False,
    )
