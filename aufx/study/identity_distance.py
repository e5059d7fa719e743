"""Identity distance between a source photo and each stimulus made from it, through the evaluation's identity
backends (aufx/evaluation/backends.json: the instrument, weights, licences, and why a backend may be unavailable). A
backend that cannot load gives no number and a reason, which the manifest records: a missing distance is never 0.
The distance is the Euclidean distance between the two embeddings on the backend's own scale (dlib: below 0.6 is
the same person).
"""
from __future__ import annotations

import numpy as np


class IdentityMeter:
    def __init__(self, backend: str | None):
        self.backend, self.reason = backend, None
        self._model = self._detector = None
        if backend is None:
            self.reason = "not requested"
            return
        try:
            from aufx.evaluation import backends, identity
        except ImportError as exc:
            self.reason = f"the evaluation package is not importable ({exc})"
            return
        self._compare = identity.compare
        try:
            self._model = backends.load(backend)
        except (backends.BackendUnavailable, ValueError) as exc:
            self.reason = str(exc)
            return
        try:  # the identity models were trained on boxes from dlib's detector; the landmark box is the fallback
            self._detector = backends.load("dlib_hog")
        except backends.BackendUnavailable:
            self._detector = None

    @property
    def available(self) -> bool:
        return self._model is not None

    def reference(self, source: np.ndarray, face_box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple, str]:
        """Embedding of the source face, the box used for it and every output, and where that box came from.

        One box for all outputs: the edits move the expression, not the head, and a box that moved with each
        expression would add its own noise to the distances.
        """
        box = self._detector(source, 0, near=face_box) if self._detector is not None else None
        origin = "dlib_hog" if box is not None else "landmarks"
        box = box or face_box
        return self._model.embed(source, box), box, origin

    def distance(self, reference: tuple[np.ndarray, tuple, str], output: np.ndarray) -> float:
        embedding, box, _ = reference
        return self._compare(embedding, self._model.embed(output, box))["distance"]
