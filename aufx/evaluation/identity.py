"""Identity preservation: cosine similarity and Euclidean distance between face embeddings of source and output.

Two backends (see aufx/evaluation/backends.json): ``dlib`` (ResNet descriptor, weights in the CC0
face-recognition-models wheel; the offline default; the training identity loss uses the same network ported to torch,
aufx.identity.dlib_resnet, which reproduces these descriptors to 1e-6) and ``facenet`` (facenet-pytorch
InceptionResnetV1 on VGGFace2; used only where the package and its cached weights are already installed, because
AUFX never downloads at run time).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aufx.evaluation.faces import Box, grow, square_crop

FACENET_WEIGHTS = "20180402-114759-vggface2.pt"
FACENET_MARGIN = 0.1  # facenet-pytorch's MTCNN crops sit slightly wider than dlib's HOG boxes


class DlibIdentity:
    """dlib's 128-D face descriptor: 5 landmarks align a 150x150 chip, a ResNet-29 embeds it."""

    def __init__(self):
        import dlib

        from aufx.identity.chip import FaceAligner
        from aufx.identity.models import WEIGHTS, models_dir

        try:
            models = models_dir()
        except FileNotFoundError as exc:
            raise ImportError(str(exc)) from None
        self._aligner = FaceAligner()
        self._net = dlib.face_recognition_model_v1(str(models / WEIGHTS))

    def embed(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        img = np.ascontiguousarray(image_rgb)
        shape = self._aligner.shape(img, box)
        return np.asarray(self._net.compute_face_descriptor(img, shape), dtype=np.float64)


def torch_home() -> Path:
    """Where torch-based packages cache weights ($TORCH_HOME, else $XDG_CACHE_HOME/torch)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default)).expanduser()


class FacenetIdentity:
    """facenet-pytorch InceptionResnetV1 (VGGFace2): 512-D L2-normalised embedding of a 160x160 crop."""

    def __init__(self):
        from aufx.identity.optional import import_or_explain

        InceptionResnetV1 = import_or_explain("facenet_pytorch", "facenet-pytorch").InceptionResnetV1
        import torch
        path = torch_home() / "checkpoints" / FACENET_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(f"VGGFace2 weights not found at {path}; AUFX never downloads at run time, "
                                    "put the file there to enable this backend")
        net = InceptionResnetV1(pretrained=None, classify=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
        self._torch, self._net = torch, net.eval()

    def embed(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        crop = square_crop(image_rgb, grow(box, FACENET_MARGIN, image_rgb.shape), 160)
        x = (self._torch.from_numpy(crop).permute(2, 0, 1)[None].float() - 127.5) / 128.0  # facenet standardisation
        with self._torch.inference_mode():
            return self._net(x)[0].double().numpy()


def load_dlib() -> DlibIdentity:
    return DlibIdentity()


def load_facenet() -> FacenetIdentity:
    return FacenetIdentity()


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Cosine similarity (higher = same identity) and Euclidean distance (dlib's own scale: < 0.6 same person)."""
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return {"cosine": cos, "distance": float(np.linalg.norm(a - b))}
