"""ultralytics' blocks (YOLOv5/v8/11/12/26 classifiers), for files read in the ultralytics dialect.

Exact twins of ``ultralytics.nn.modules``: the same attribute names and order (so a state_dict
loads by position), the same kernels, expansions and head counts, SiLU (or the file's
``activation:``) wherever ultralytics' ``Conv`` has ``act=True``. Args follow ultralytics'
YAML order. Row repeats: C2f/C3/C3k2/C2PSA/A2C2f take them as their inner count ``n`` (after
``depth_multiple``); other blocks become that many copies with the same args, as in ultralytics.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from yaml2torch.blocks.activations import Activation, act_expr, activation
from yaml2torch.blocks.args import Arg, ArgType, Bool, BoundArgs, Float, Int
from yaml2torch.blocks.base import Block, BuildContext, conv_out, linear_params
from yaml2torch.blocks.conv import Conv as KindleConv
from yaml2torch.blocks.yolo import Tally, add_macs, conv_class, template_class, with_channels, with_classes
from yaml2torch.errors import Diagnostics, SpecError
from yaml2torch.ir.nodes import ClassSource, ModuleInstance, Shape
from yaml2torch.spec.yaml_nodes import Node

DIALECT = ("ultralytics",)
CLASSIFY_HIDDEN = 1280  # ultralytics' Classify: "efficientnet_b0 size"
_HEADS = {
    "detection": ("Detect", "WorldDetect", "YOLOEDetect", "v10Detect", "RTDETRDecoder"),
    "segmentation": ("Segment", "Segment26", "YOLOESegment", "YOLOESegment26", "SemanticSegment"),
    "pose": ("Pose", "Pose26"),
    "oriented-box": ("OBB", "OBB26"),
    "depth": ("Depth",),
}
REFUSED = MappingProxyType(
    {
        name: f"{name} is an ultralytics {kind} head, which yaml2torch does not compile; "
        "it compiles ultralytics classifiers (head Classify), see docs/origin_formats.md"
        for kind, names in _HEADS.items()
        for name in names
    }
)


@dataclass(frozen=True)
class IntOrNull(ArgType):
    """ultralytics' padding: null is 'same' (k // 2), an int is that padding (0 is 0)."""

    description = "an int >= 0 or null"

    def parse(self, node: Node, label: str, diagnostics: Diagnostics) -> int | None:
        return None if node.value is None else Int(minimum=0).parse(node, label, diagnostics)


def default_act(ctx: BuildContext) -> Activation:
    return activation(ctx.default_act or "SiLU")


def then(first: Tally, second: Tally) -> Tally:
    """``second`` (a sub-block tallied from zero) applied after ``first``."""
    return Tally(second.shape, first.params + second.params, add_macs(first.macs, second.macs))


def bottleneck(x: Tally, ctx: BuildContext, c_out: int, kernels: tuple[int, int], e: float, g: int = 1) -> Tally:
    hidden = int(c_out * e)
    return x.conv(ctx, hidden, kernels[0]).conv(ctx, c_out, kernels[1], g=g)


def c3(x: Tally, ctx: BuildContext, c_out: int, n: int, kernels: tuple[int, int], e: float = 0.5, g: int = 1) -> Tally:
    """C3 / C3k: (cv1 -> n Bottlenecks) || cv2, concatenated, cv3."""
    hidden = int(c_out * e)
    branch = Tally(x.shape).conv(ctx, hidden)
    for _ in range(n):
        branch = bottleneck(branch, ctx, hidden, kernels, 1.0, g)
    merged = branch.join(Tally(x.shape).conv(ctx, hidden), with_channels(branch.shape, 2 * hidden))
    return then(x, merged.conv(ctx, c_out))


def split_chain(x: Shape, ctx: BuildContext, c: int, c_out: int, inner: list[Any]) -> Tally:
    """C2f's wiring: cv1 to 2c, ``inner`` blocks chained on the second half, all 2 + n parts concatenated, cv2."""
    head = Tally(x).conv(ctx, 2 * c)
    chain = Tally(with_channels(head.shape, c))
    for block in inner:
        chain = block(chain)
    return head.join(chain, with_channels(head.shape, (2 + len(inner)) * c)).conv(ctx, c_out)


def attention(x: Tally, ctx: BuildContext, dim: int, heads: int, ratio: float = 0.5) -> Tally:
    """qkv, pe (depthwise 3x3), proj convs, plus the two attention matmuls over N = H*W positions."""
    head_dim = dim // heads
    key_dim = int(head_dim * ratio)
    if head_dim * heads != dim or key_dim < 1:
        raise ctx.fail(f"attention over {dim} channels in {heads} heads needs channels divisible by heads")
    qkv = Tally(x.shape).conv(ctx, dim + 2 * key_dim * heads)
    pe = Tally(x.shape).conv(ctx, dim, 3, g=dim)
    h, w = x.shape.hw
    matmuls = None if h is None or w is None else heads * (h * w) ** 2 * (key_dim + head_dim)
    mixed = Tally(x.shape, qkv.params + pe.params, add_macs(add_macs(qkv.macs, pe.macs), matmuls))
    return then(x, mixed.conv(ctx, dim))


def psa_block(x: Tally, ctx: BuildContext, c: int) -> Tally:
    attended = attention(x, ctx, c, max(c // 64, 1))
    return then(attended, Tally(x.shape).conv(ctx, 2 * c).conv(ctx, c))


class UltralyticsBlock(Block):
    """A block that renders one ultralytics class plus the Conv (and helper) classes it uses."""

    dialects = DIALECT
    image_input = True
    width_scaled = True
    helpers: ClassVar[tuple[tuple[str, str], ...]] = ()  # (template, class name), in definition order
    own_template: ClassVar[str] = ""

    def classes(self) -> tuple[ClassSource, ...]:
        named = [(f"ultralytics/{t}", name) for t, name in self.helpers]
        own = (f"ultralytics/{self.own_template}", self.name)
        return (conv_class(), *(template_class(t, name) for t, name in (*named, own)))

    def finish(self, x: Shape, tally: Tally, *args: Any, **kwargs: Any) -> ModuleInstance:
        module = self.instance(x, tally.shape, tally.params, tally.macs, x.channels, *args, **kwargs)
        return with_classes(module, *self.classes())


class Conv(KindleConv):
    """ultralytics Conv: ``[c, k=1, s=1, p=null, g=1, d=1, act=true]``; act true is SiLU (or ``activation:``)."""

    name = "Conv"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.Conv"
    dialects = DIALECT
    signature = (
        Arg("c", Int(), aliases=("c2",)),
        Arg("k", Int(), 1),
        Arg("s", Int(), 1),
        Arg("p", IntOrNull(), None),
        Arg("g", Int(), 1),
        Arg("d", Int(), 1),
        Arg("act", Bool(), True),
    )
    stride_on = None  # ultralytics repeats a row as identical copies, stride included

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.d != 1:
            raise SpecError(a.locs["d"], f"Conv dilation {a.d} is not supported (only d=1)")
        return self.conv_instance(a.replace(act=default_act(ctx) if a.act else None), x, ctx, groups=a.g)


class C2f(UltralyticsBlock):
    """``[c, shortcut=false, g=1, e=0.5]``: n Bottlenecks (3x3, 3x3, expansion 1.0)."""

    name = "C2f"
    origin = "ultralytics"
    twin_of = "ultralytics.nn.modules.C2f"
    signature: tuple[Arg, ...] = (Arg("c", Int()), Arg("shortcut", Bool(), False), Arg("g", Int(), 1), Arg("e", Float(minimum=0.0), 0.5))
    helpers: ClassVar[tuple[tuple[str, str], ...]] = (("bottleneck.py.jinja", "Bottleneck"),)
    own_template = "c2f.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"n": 1, "shortcut": False, "groups": 1, "expansion": 0.5, "act": None}

    def expand(self, a: BoundArgs, repeat: int, x: Shape, ctx: BuildContext) -> list[ModuleInstance]:
        return [self.build(a.replace(n=repeat), x, ctx)]

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        c, n = int(a.c * a.e), a.values.get("n", 1)
        inner = [lambda t: bottleneck(t, ctx, c, (3, 3), 1.0, a.g)] * n
        tally = split_chain(x, ctx, c, a.c, inner)
        kwargs = {"n": n, "shortcut": a.shortcut, "groups": a.g, "expansion": a.e, "act": act_expr(default_act(ctx))}
        return self.finish(x, tally, a.c, **kwargs)


class C3(C2f):
    """YOLOv5's C3 as ultralytics builds it: ``[c, shortcut=true, g=1, e=0.5]``."""

    name = "C3"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.C3"
    signature = (Arg("c", Int()), Arg("shortcut", Bool(), True), Arg("g", Int(), 1), Arg("e", Float(minimum=0.0), 0.5))
    own_template = "c3.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {**C2f.ctor_defaults, "shortcut": True}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        n = a.values.get("n", 1)
        tally = c3(Tally(x), ctx, a.c, n, (1, 3), a.e, a.g)
        kwargs = {"n": n, "shortcut": a.shortcut, "groups": a.g, "expansion": a.e, "act": act_expr(default_act(ctx))}
        return self.finish(x, tally, a.c, **kwargs)


class C3k2(C2f):
    """``[c, c3k=false, e=0.5, attn=false, g=1, shortcut=true]``; scales m, l and x force c3k (as ultralytics)."""

    name = "C3k2"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.C3k2"
    signature = (
        Arg("c", Int()),
        Arg("c3k", Bool(), False),
        Arg("e", Float(minimum=0.0), 0.5),
        Arg("attn", Bool(), False),
        Arg("g", Int(), 1),
        Arg("shortcut", Bool(), True),
    )
    helpers = (("bottleneck.py.jinja", "Bottleneck"), ("c3.py.jinja", "C3k"))
    own_template = "c3k2.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {**C2f.ctor_defaults, "c3k": False, "shortcut": True}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.attn:
            raise SpecError(a.locs["attn"], "C3k2 with attn (Bottleneck + PSABlock inner blocks) is not supported")
        c3k = a.c3k or ctx.scale in ("m", "l", "x")
        c, n = int(a.c * a.e), a.values.get("n", 1)

        def inner(t: Tally) -> Tally:
            return c3(t, ctx, c, 2, (3, 3), 0.5, a.g) if c3k else bottleneck(t, ctx, c, (3, 3), 0.5, a.g)

        tally = split_chain(x, ctx, c, a.c, [inner] * n)
        kwargs = {"n": n, "c3k": c3k, "expansion": a.e, "groups": a.g, "shortcut": a.shortcut}
        return self.finish(x, tally, a.c, **kwargs, act=act_expr(default_act(ctx)))


class C2PSA(C2f):
    """``[c, e=0.5]``: n PSABlocks (attention with max(c // 64, 1) heads, then a 2x FFN); c must equal the input."""

    name = "C2PSA"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.C2PSA"
    signature = (Arg("c", Int()), Arg("e", Float(minimum=0.0), 0.5))
    helpers = (("attention.py.jinja", "Attention"), ("psa_block.py.jinja", "PSABlock"))
    own_template = "c2psa.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"n": 1, "expansion": 0.5, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.c != x.channels:
            raise ctx.fail(f"C2PSA keeps its channels: input {x.channels}, c {a.c} (after scaling); they must match")
        c, n = int(x.channels * a.e), a.values.get("n", 1)
        head = Tally(x).conv(ctx, 2 * c)
        chain = Tally(with_channels(head.shape, c))
        for _ in range(n):
            chain = psa_block(chain, ctx, c)
        tally = head.join(chain, head.shape).conv(ctx, a.c)
        return self.finish(x, tally, a.c, n=n, expansion=a.e, act=act_expr(default_act(ctx)))


def area_attention(x: Tally, ctx: BuildContext, dim: int, heads: int, area: int) -> Tally:
    """AAttn: qkv (to 3 dim), pe (depthwise 7x7), proj convs, plus the two attention matmuls within each area."""
    head_dim = dim // heads
    qkv = Tally(x.shape).conv(ctx, 3 * dim)
    pe = Tally(x.shape).conv(ctx, dim, 7, g=dim)
    h, w = x.shape.hw
    matmuls = None
    if h is not None and w is not None:
        if (h * w) % area:
            raise ctx.fail(f"area attention splits {h}x{w} = {h * w} positions into {area} areas; they must divide evenly")
        matmuls = 2 * area * heads * (h * w // area) ** 2 * head_dim
    mixed = Tally(x.shape, qkv.params + pe.params, add_macs(add_macs(qkv.macs, pe.macs), matmuls))
    return then(x, mixed.conv(ctx, dim))


def area_block(x: Tally, ctx: BuildContext, dim: int, mlp_ratio: float, area: int) -> Tally:
    """ABlock: x + AAttn(x) with dim // 32 heads, then x + MLP(x) (1x1 to int(dim * mlp_ratio), 1x1 back)."""
    attended = area_attention(x, ctx, dim, dim // 32, area)
    return then(attended, Tally(x.shape).conv(ctx, int(dim * mlp_ratio)).conv(ctx, dim))


class A2C2f(C2f):
    """``[c, a2=true, area=1, residual=false, mlp_ratio=2.0, e=0.5, g=1, shortcut=true]`` (YOLO12); scales l, x add residual, mlp_ratio 1.2.

    n stages of two ABlocks (area attention, c_ // 32 heads, then a 1x1 MLP) or a C3k (a2 false), as ultralytics.
    """

    name = "A2C2f"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.A2C2f"
    signature = (
        Arg("c", Int()),
        Arg("a2", Bool(), True),
        Arg("area", Int(minimum=1), 1),
        Arg("residual", Bool(), False),
        Arg("mlp_ratio", Float(minimum=0.0), 2.0),
        Arg("e", Float(minimum=0.0), 0.5),
        Arg("g", Int(), 1),
        Arg("shortcut", Bool(), True),
    )
    helpers = (
        ("bottleneck.py.jinja", "Bottleneck"),
        ("c3.py.jinja", "C3k"),
        ("area_attention.py.jinja", "AAttn"),
        ("area_block.py.jinja", "ABlock"),
    )
    own_template = "a2c2f.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {
        **C2f.ctor_defaults,
        "a2": True,
        "area": 1,
        "residual": False,
        "mlp_ratio": 2.0,
        "shortcut": True,
    }

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        residual, mlp_ratio = self.scaled_extras(a, ctx)
        c, n = int(a.c * a.e), a.values.get("n", 1)
        if c % 32:
            raise ctx.fail(f"A2C2f hidden channels int({a.c} * {a.e}) = {c} must be a multiple of 32 (ultralytics asserts it)")
        if a.a2 and residual and a.c != x.channels:
            raise ctx.fail(f"A2C2f with residual adds its input back: input {x.channels}, c {a.c} (after scaling); they must match")

        def inner(t: Tally) -> Tally:
            if not a.a2:
                return c3(t, ctx, c, 2, (3, 3), 0.5, a.g)
            return area_block(area_block(t, ctx, c, mlp_ratio, a.area), ctx, c, mlp_ratio, a.area)

        chain = Tally(x).conv(ctx, c)
        for _ in range(n):
            chain = inner(chain)
        tally = chain.at(with_channels(chain.shape, (1 + n) * c)).conv(ctx, a.c)
        if a.a2 and residual:
            tally = tally.plus_params(a.c)  # gamma
        kwargs = {"n": n, "a2": a.a2, "area": a.area, "residual": residual, "mlp_ratio": mlp_ratio, "expansion": a.e}
        return self.finish(x, tally, a.c, **kwargs, groups=a.g, shortcut=a.shortcut, act=act_expr(default_act(ctx)))

    @staticmethod
    def scaled_extras(a: BoundArgs, ctx: BuildContext) -> tuple[bool, float]:
        """(residual, mlp_ratio): ultralytics appends (True, 1.2) to the row's args at scales l and x."""
        if ctx.scale not in ("l", "x"):
            return a.residual, a.mlp_ratio
        given = [name for name in ("residual", "mlp_ratio", "e", "g", "shortcut") if a.locs[name] != ctx.loc]
        if given:
            raise SpecError(
                a.locs[given[0]],
                f"A2C2f at scale {ctx.scale}: ultralytics appends (residual=True, mlp_ratio=1.2) after the row's args, "
                f"which shifts a given {given[0]!r}; give at most [c, a2, area] here",
            )
        return True, 1.2


class SPPF(UltralyticsBlock):
    """``[c, k=5, n=3, shortcut=false]``; rows that give only [c, k] activate cv1 too (ultralytics' legacy rule)."""

    name = "SPPF"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.SPPF"
    signature = (Arg("c", Int()), Arg("k", Int(), 5), Arg("n", Int(), 3), Arg("shortcut", Bool(), False))
    own_template = "sppf.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 5, "n": 3, "shortcut": False, "act": None, "act_cv1": True}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.k % 2 == 0:
            raise SpecError(a.locs["k"], f"SPPF kernel size must be odd (a same-size max-pool), got {a.k}")
        if x.channels < 2:
            raise ctx.fail(f"SPPF halves its input channels first and needs at least 2, got {x}")
        legacy = all(a.locs[name] == ctx.loc for name in ("n", "shortcut"))  # neither given in the row
        hidden = x.channels // 2
        tally = Tally(x).conv(ctx, hidden)
        tally = tally.at(with_channels(tally.shape, hidden * (a.n + 1))).conv(ctx, a.c)
        kwargs = {"kernel_size": a.k, "n": a.n, "shortcut": a.shortcut, "act": act_expr(default_act(ctx))}
        return self.finish(x, tally, a.c, **kwargs, act_cv1=legacy)


class Classify(UltralyticsBlock):
    """``[c, k=1, s=1, p=null, g=1]``: Conv to 1280, global average pool, Linear to c; returns logits."""

    name = "Classify"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.Classify"
    signature = (Arg("c", Int()), Arg("k", Int(), 1), Arg("s", Int(), 1), Arg("p", IntOrNull(), None), Arg("g", Int(), 1))
    width_scaled = False  # the class count is never scaled
    own_template = "classify.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"kernel_size": 1, "stride": 1, "padding": 0, "groups": 1, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        padding = a.k // 2 if a.p is None else a.p
        conv = Tally(x).conv(ctx, CLASSIFY_HIDDEN, a.k, a.s, padding, a.g)
        tally = Tally(Shape((a.c,)), conv.params + linear_params(CLASSIFY_HIDDEN, a.c), add_macs(conv.macs, CLASSIFY_HIDDEN * a.c))
        kwargs = {"kernel_size": a.k, "stride": a.s, "padding": padding, "groups": a.g, "act": act_expr(default_act(ctx))}
        return self.finish(x, tally, a.c, **kwargs)


class ResNetLayer(UltralyticsBlock):
    """``[c_in, c, s=1, is_first=false, n=1, e=4]`` (ultralytics writes c_in in the row): the 7x7 stem, or n blocks."""

    name = "ResNetLayer"

    origin = "ultralytics"

    twin_of = "ultralytics.nn.modules.ResNetLayer"
    signature = (
        Arg("c_in", Int()),
        Arg("c", Int()),
        Arg("s", Int(), 1),
        Arg("is_first", Bool(), False),
        Arg("n", Int(), 1),
        Arg("e", Int(), 4),
    )
    width_scaled = False  # ultralytics does not scale ResNetLayer rows
    helpers = (("resnet_block.py.jinja", "ResNetBlock"),)
    own_template = "resnet_layer.py.jinja"
    ctor_defaults: ClassVar[dict[str, Any]] = {"stride": 1, "is_first": False, "n": 1, "expansion": 4, "act": None}

    def build(self, a: BoundArgs, x: Shape, ctx: BuildContext) -> ModuleInstance:
        if a.c_in != x.channels:
            raise SpecError(a.locs["c_in"], f"ResNetLayer c_in {a.c_in} does not match its input {x}")
        if a.is_first:
            stem = Tally(x).conv(ctx, a.c, 7, 2, 3)
            tally = stem.at(Shape((a.c, *(conv_out(d, 3, 2, 1) for d in stem.shape.hw))))
        else:
            tally = Tally(x)
            for i in range(a.n):
                tally = then(tally, resnet_block(Tally(tally.shape), ctx, a.c, a.s if i == 0 else 1, a.e))
        kwargs = {"stride": a.s, "is_first": a.is_first, "n": a.n, "expansion": a.e, "act": act_expr(default_act(ctx))}
        return self.finish(x, tally, a.c, **kwargs)


def resnet_block(x: Tally, ctx: BuildContext, c_mid: int, s: int, e: int) -> Tally:
    c_out = e * c_mid
    main = x.conv(ctx, c_mid).conv(ctx, c_mid, 3, s, 1).conv(ctx, c_out)
    if s == 1 and x.shape.channels == c_out:
        return main
    return main.join(Tally(x.shape).conv(ctx, c_out, 1, s), main.shape)
