"""IR expressions -> Python source. Only checked identifiers and repr() of literals appear."""

from __future__ import annotations

from yaml2torch.ir.nodes import Call, Expr, Literal, check_identifier, check_literal


def render_expr(expr: Expr) -> str:
    if isinstance(expr, Literal):
        return repr(check_literal(expr.value))
    if isinstance(expr, Call):
        parts = [render_expr(a) for a in expr.args]
        parts += [f"{check_identifier(k)}={render_expr(v)}" for k, v in expr.kwargs]
        return f"{check_identifier(expr.callee)}({', '.join(parts)})"
    raise TypeError(f"not an IR expression: {expr!r}")
