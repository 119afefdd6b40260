"""`yaml2torch summary`: the per-row table and its JSON form, straight from the IR."""

from __future__ import annotations

from yaml2torch.ir.nodes import Layer, ModelIR


def layer_row(layer: Layer) -> dict:
    return {
        "index": layer.index,
        "from": list(layer.sources) if len(layer.sources) > 1 else layer.sources[0],
        "block": layer.block,
        "repeat": len(layer.modules),
        "args": layer.summary,
        "output_shape": list(layer.out_shape.dims),
        "params": layer.params,
        "macs": layer.macs,
        "line": layer.loc.line,
    }


def summary_json(ir: ModelIR) -> dict:
    summary: dict[str, object] = {
        "params": ir.params,
        "macs": ir.macs,
        "output_shape": list(ir.output_shape.dims),
        "input_shape": list(ir.input_shape.dims),
        "arch_hash": ir.arch_hash,
        "layers": [layer_row(layer) for layer in ir.layers],
    }
    if ir.normalize is not None:
        summary["normalize"] = {"mean": list(ir.normalize[0]), "std": list(ir.normalize[1])}
    return summary


def input_description(ir: ModelIR) -> str:
    """What the model takes: its input shape, and the normalization it does itself."""
    if ir.normalize is None:
        return f"input {ir.input_shape}"
    mean, std = (", ".join(f"{v:.4g}" for v in values) for values in ir.normalize)
    return f"input {ir.input_shape} in [0, 1], normalized inside (mean {mean}; std {std})"


def summary_table(ir: ModelIR) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{ir.spec_path}  {input_description(ir)}", title_justify="left")
    for column in ("#", "from", "block", "n", "args", "output", "params", "MACs"):
        table.add_column(column, justify="right" if column in ("#", "n", "params", "MACs") else "left")
    for layer in ir.layers:
        row = layer_row(layer)
        table.add_row(
            str(layer.index),
            str(row["from"]),
            layer.block,
            str(row["repeat"]),
            layer.summary,
            str(layer.out_shape),
            f"{layer.params:,}",
            "?" if layer.macs is None else f"{layer.macs:,}",
        )
    macs = "? (set input_size or --input-size)" if ir.macs is None else f"{ir.macs:,}"
    table.caption = f"params {ir.params:,}   MACs {macs}   output {ir.output_shape}   hash {ir.arch_hash[:12]}"
    table.caption_justify = "left"
    Console(width=160).print(table)
