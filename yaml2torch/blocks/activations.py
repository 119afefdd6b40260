"""Activation names -> torch.nn classes, from a fixed table (no string ever becomes code)."""

from __future__ import annotations

from dataclasses import dataclass

from yaml2torch.errors import SpecError, suggest
from yaml2torch.ir.nodes import Call, call
from yaml2torch.spec.yaml_nodes import Node, type_name

# torch.nn class -> keyword arguments the generated code passes.
_CLASSES: dict[str, dict[str, object]] = {
    "ReLU": {"inplace": True},
    "ReLU6": {"inplace": True},
    "SiLU": {"inplace": True},
    "Hardswish": {"inplace": True},
    "Hardsigmoid": {},
    "LeakyReLU": {"inplace": True},
    "GELU": {},
    "Sigmoid": {},
    "Tanh": {},
    "Mish": {"inplace": True},
    "ELU": {"inplace": True},
    "SELU": {"inplace": True},
    "CELU": {"inplace": True},
    "PReLU": {},
    "Softplus": {},
    "Softsign": {},
    "Tanhshrink": {},
    "Hardtanh": {"inplace": True},
    "LogSigmoid": {},
    "Softmax": {"dim": 1},
    "LogSoftmax": {"dim": 1},
    "Identity": {},
}
# Names used by the origin formats.
_ALIASES = {"HardSwish": "Hardswish", "HardSigmoid": "Hardsigmoid", "Swish": "SiLU"}
NAMES = tuple(_CLASSES) + tuple(_ALIASES)


@dataclass(frozen=True)
class Activation:
    """A torch.nn activation class name from the table above."""

    name: str

    def expr(self) -> Call:
        return call(f"nn.{self.name}", **_CLASSES[self.name])

    @property
    def params(self) -> int:
        return 1 if self.name == "PReLU" else 0


def activation(name: str) -> Activation:
    """An Activation for a catalogue name (blocks use this for their fixed activations)."""
    name = _ALIASES.get(name, name)
    if name not in _CLASSES:
        raise KeyError(name)
    return Activation(name)


def parse_activation(node: Node, label: str) -> Activation | None:
    if node.value is None:
        return None
    if not isinstance(node.value, str):
        raise SpecError(node.loc, f"{label} must be an activation name or null, not {type_name(node)}")
    try:
        return activation(node.value)
    except KeyError:
        raise SpecError(
            node.loc,
            f"unknown activation {node.value!r}{suggest(node.value, NAMES)}",
        ) from None


def act_expr(act: Activation | None) -> Call | None:
    """The constructor expression for an optional activation (None stays None)."""
    return act.expr() if act is not None else None
