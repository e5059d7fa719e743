"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, CC0, shipped in the
``face-recognition-models`` wheel) as a torch module: differentiable, batched, on any device.

The ``.dat`` file is dlib's own binary serialization of the network, read here directly (no pickle, no dlib):
dlib integers are a control byte (bit 7 sign, low 4 bits length) plus little-endian bytes, floats are an
(int64 mantissa, int16 exponent) pair, strings are length + bytes, and tensors are 4 integers + raw little-endian
float32. The file nests layers outermost first, so it holds every wrapper's version, then the input layer, then the
layer parameters from the input up; :data:`ARCHITECTURE` (dlib's ``anet_type`` from its face recognition example)
says which layer comes where, and every version and shape read is checked against it.

Network (input 150x150 aligned chip, output 128-d descriptor, dlib's scale: distance < 0.6 = same person):
conv 7x7/2 (32) -> affine -> relu -> max pool 3x3/2 -> 3 residual blocks (32) -> 4 (64, first strided) -> 3 (128)
-> 3 (256) -> 1 (256) -> global average -> linear 256->128 (no bias). Strided 3x3 convolutions and the pools have
no padding (dlib's default for stride 2), and a down-sampling block adds a 2x2 average pool of its input, zero
padded to the block's channels and size, as dlib's ``add_prev`` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aufx.identity.models import CHIP_PADDING, CHIP_SIZE, WEIGHTS, models_dir  # noqa: F401 (re-exported)

# (channels, blocks, first block strided) per stage, input side first (dlib's alevel4 ... alevel0)
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


# --- dlib's serialization -----------------------------------------------------------------------------------------


class DlibFormatError(ValueError):
    """The file is not the dlib network this module reads; the message says where it differs."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"file ends at byte {len(self.data)} while reading {n} bytes at {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if not 1 <= size <= 8:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        if self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old ASCII float at byte {self.pos} (dlib before 2016), not supported")
        mantissa, exponent = self.int(), self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def str(self) -> str:
        at, n = self.pos, self.int()
        raw = self._take(n) if 0 < n <= 64 else b""  # layer names are short ASCII words
        if not raw or not raw.isascii():
            raise DlibFormatError(f"expected a layer name at byte {at}, found none (is this dlib's face "
                                  f"recognition network?)")
        return raw.decode("ascii")

    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.int() for _ in range(4))

    def tensor(self) -> np.ndarray:
        self.version(2, "tensor")
        shape = self.shape()
        n = int(np.prod(shape))
        return np.frombuffer(self._take(4 * n), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1, "alias_tensor")
        return self.shape()

    def version(self, allowed, what: str) -> int:
        at, v = self.pos, self.int()
        if v not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            raise DlibFormatError(f"{what}: version {v} at byte {at}, expected {allowed}")
        return v

    def name(self, allowed: tuple[str, ...], what: str) -> str:
        at, s = self.pos, self.str()
        if s not in allowed:
            raise DlibFormatError(f"expected {what} ({' / '.join(allowed)}) at byte {at}, found {s!r}")
        return s


@dataclass(frozen=True)
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, tag, skip, add_prev, fc, input
    args: tuple = ()  # con: (filters, size, stride); pools: (size, stride); tag/skip/add_prev: (id,); fc: (outputs,)


def _block(channels: int, stride: int) -> list[Layer]:
    """dlib's ``block``: con(stride) -> affine -> relu -> con -> affine."""
    return [Layer("con", (channels, 3, stride)), Layer("affine"), Layer("relu"),
            Layer("con", (channels, 3, 1)), Layer("affine")]


def architecture() -> tuple[Layer, ...]:
    """dlib's face recognition ``anet_type`` as a flat list, input first (tags mark the residual branches)."""
    layers = [Layer("input"), Layer("con", (32, 7, 2)), Layer("affine"), Layer("relu"), Layer("max_pool", (3, 2))]
    for channels, blocks, down in STAGES:
        for b in range(blocks):
            if b == 0 and down:  # ares_down: relu(add_prev2(avg_pool(skip1(tag2(block(tag1(x)))))))
                layers += [Layer("tag", (1,)), *_block(channels, 2), Layer("tag", (2,)), Layer("skip", (1,)),
                           Layer("avg_pool", (2, 2)), Layer("add_prev", (2,)), Layer("relu")]
            else:  # ares: relu(add_prev1(block(tag1(x))))
                layers += [Layer("tag", (1,)), *_block(channels, 1), Layer("add_prev", (1,)), Layer("relu")]
    layers += [Layer("avg_pool", (0, 1)), Layer("fc", (128,))]
    return tuple(layers)


ARCHITECTURE = architecture()


def _read_details(r: _Reader, layer: Layer) -> dict:
    """One layer's parameters, as dlib serialized them; checks the hyper-parameters against ``layer``."""
    k = layer.kind
    if k == "con":
        v = r.name(("con_4", "con_5", "con_6"), "a convolution")
        params = r.tensor()
        filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        wshape, bshape = r.alias(), r.alias()
        [r.float() for _ in range(4)]  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if v in ("con_5", "con_6") else True
        if v == "con_6":
            r.bool()  # use_relu (fused relu, training-time only)
        n, size, stride = layer.args
        pad = 0 if stride != 1 else size // 2
        if (filters, nr, nc, sy, sx, py, px) != (n, size, size, stride, stride, pad, pad):
            raise DlibFormatError(f"convolution {(filters, nr, nc, sy, sx, py, px)} where the network has "
                                  f"{(n, size, size, stride, stride, pad, pad)}")
        flat = params.reshape(-1)
        nw = int(np.prod(wshape))
        bias = flat[nw:nw + int(np.prod(bshape))] if use_bias else np.zeros(filters, np.float32)
        return {"weight": flat[:nw].reshape(wshape), "bias": bias, "stride": stride, "padding": pad}
    if k == "affine":
        v = r.name(("affine_", "affine_2"), "an affine layer (dlib's released model folds batch norm into these)")
        params = r.tensor().reshape(-1)
        g, b = r.alias(), r.alias()
        r.int()  # mode (CONV_MODE)
        if v == "affine_2" and r.bool():
            raise DlibFormatError("a disabled affine layer; this file is not dlib's face recognition model")
        n = int(np.prod(g))
        return {"gamma": params[:n], "beta": params[n:n + int(np.prod(b))]}
    if k == "relu":
        if r.name(("relu_", "relu_2"), "a relu") == "relu_2" and r.bool():
            raise DlibFormatError("a disabled relu; this file is not dlib's face recognition model")
        return {}
    if k in ("max_pool", "avg_pool"):
        r.name((f"{k}_2",), f"a {k.replace('_', ' ')}")
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        size, stride = layer.args
        if (nr, nc, sy, sx, py, px) != (size, size, stride, stride, 0, 0):
            raise DlibFormatError(f"{k} {(nr, nc, sy, sx, py, px)} where the network has {(size, stride)}")
        return {}
    if k == "add_prev":
        r.name(("add_prev_",), "add_prev")
        return {}
    if k == "fc":
        v = r.name(("fc_2", "fc_3"), "a fully connected layer")
        outputs, inputs = r.int(), r.int()
        params = r.tensor().reshape(-1)
        wshape = r.alias()
        r.alias()
        if r.int() != 1:  # FC_NO_BIAS
            raise DlibFormatError("the last layer has a bias; dlib's face model has none")
        [r.float() for _ in range(4)]
        if v == "fc_3":
            r.bool()
        if outputs != layer.args[0]:
            raise DlibFormatError(f"{outputs} outputs where the network has {layer.args[0]}")
        return {"weight": params[:inputs * outputs].reshape(inputs, outputs).T.copy()}  # dlib: x @ W
    raise AssertionError(k)


def read_dat(path: str | Path) -> tuple[dict, list[dict]]:
    """Parse dlib's network file -> (input means and loss settings, per-layer parameters in ARCHITECTURE order)."""
    r = _Reader(Path(path).read_bytes())
    r.version(1, "add_loss_layer")
    r.name(("loss_metric_2",), "the metric loss")
    meta = {"margin": r.float(), "distance_threshold": r.float()}
    wrapped = ARCHITECTURE[1:]  # every layer but the input is one dlib wrapper (add_layer / tag / skip)
    versions = []
    for layer in reversed(wrapped):  # outermost first
        innermost = layer is wrapped[0]
        if layer.kind in ("tag", "skip"):
            versions.append(r.version(1, f"add_{layer.kind}_layer"))
        else:
            versions.append(r.version((2, 3) if innermost else (1, 2), f"add_layer ({layer.kind})"))
    r.name(("input_rgb_image_sized",), "the input layer")
    meta["mean_rgb"] = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise DlibFormatError(f"input size is not {CHIP_SIZE}x{CHIP_SIZE}")
    params = []
    for layer, version in zip(wrapped, reversed(versions)):
        if layer.kind in ("tag", "skip"):
            params.append({})
            continue
        params.append(_read_details(r, layer))
        r.bool(), r.bool(), r.bool()  # setup called, gradient stale, output/gradient disabled
        r.tensor(), r.tensor(), r.tensor()  # x_grad, cached output, params grad (empty in a saved model)
        if layer is wrapped[0] and version == 3:
            r.int()  # sample expansion factor
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} bytes left after the network")
    return meta, params


# --- the network --------------------------------------------------------------------------------------------------


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, the smaller tensor zero padded at the end of each axis."""
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t):
        return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]))

    return pad(a) + pad(b)


class DlibResNet(nn.Module):
    """(B, 3, 150, 150) RGB chips in [0, 255] (dlib.get_face_chip's framing) -> (B, 128) descriptors."""

    def __init__(self, meta: dict, params: list[dict]):
        super().__init__()
        self.layers = ARCHITECTURE[1:]
        self.register_buffer("mean", torch.tensor(meta["mean_rgb"], dtype=torch.float32).view(1, 3, 1, 1))
        self.distance_threshold = meta["distance_threshold"]
        self.weights = nn.ParameterList()
        self._index = []  # per layer: index of its first parameter in self.weights (or -1)
        self._conv = {}
        for layer, p in zip(self.layers, params):
            self._index.append(len(self.weights))
            if layer.kind == "con":
                self.weights.extend([nn.Parameter(torch.from_numpy(p["weight"])),
                                     nn.Parameter(torch.from_numpy(p["bias"]))])
                self._conv[len(self._index) - 1] = (p["stride"], p["padding"])
            elif layer.kind == "affine":
                self.weights.extend([nn.Parameter(torch.from_numpy(p["gamma"]).view(1, -1, 1, 1)),
                                     nn.Parameter(torch.from_numpy(p["beta"]).view(1, -1, 1, 1))])
            elif layer.kind == "fc":
                self.weights.append(nn.Parameter(torch.from_numpy(p["weight"])))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips - self.mean.to(chips.dtype)) / 256.0
        tags: dict[int, torch.Tensor] = {}
        w = self.weights
        for i, layer in enumerate(self.layers):
            k, j = layer.kind, self._index[i]
            if k == "con":
                stride, pad = self._conv[i]
                x = F.conv2d(x, w[j], w[j + 1], stride=stride, padding=pad)
            elif k == "affine":
                x = x * w[j] + w[j + 1]
            elif k == "relu":
                x = F.relu(x)
            elif k == "max_pool":
                x = F.max_pool2d(x, *layer.args)
            elif k == "avg_pool":
                x = x.mean(dim=(2, 3), keepdim=True) if layer.args[0] == 0 else F.avg_pool2d(x, *layer.args)
            elif k == "tag":
                tags[layer.args[0]] = x
            elif k == "skip":
                x = tags[layer.args[0]]
            elif k == "add_prev":
                x = _add_padded(x, tags[layer.args[0]])
            elif k == "fc":
                x = F.linear(x.flatten(1), w[j])
        return x


@lru_cache(maxsize=2)
def _cached(path: str) -> tuple[dict, list[dict]]:
    return read_dat(path)


def load_dlib_resnet(path: str | Path | None = None) -> DlibResNet:
    """The descriptor network with dlib's released weights, in eval mode with frozen parameters."""
    path = Path(path) if path else models_dir() / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"dlib face recognition weights not found at {path} "
                                "(pip install face-recognition-models==0.3.0)")
    meta, params = _cached(str(path.resolve()))
    return DlibResNet(meta, params).eval().requires_grad_(False)
