"""A small stimulus folder shaped like the stimulus builder's output, for the study tests.

Two real faces (scikit-image's astronaut, matplotlib's Grace Hopper), with brightness changes standing in for the
engine's expression edits: the study code only needs distinct images and a well-formed manifest.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from matplotlib import cbook
from PIL import Image, ImageEnhance
from skimage import data

from aufx import __version__
from aufx.model.presets import EMOTIONS, preset_vector
from aufx.study.manifest import MANIFEST_COLUMNS

# (condition, intensity, engine); "smirk" is a user-defined condition with no right answer among the 8 categories.
CONDITIONS = [("neutral", 0.0, "warp"), ("happy", 0.5, "warp"), ("happy", 1.0, "warp"), ("sad", 0.5, "warp"),
              ("sad", 1.0, "warp"), ("smirk", 0.6, "warp"), ("happy", 1.0, "diffusion")]
BRIGHTNESS = {"neutral": 0.0, "happy": 0.3, "sad": -0.3, "smirk": 0.15}


def faces() -> dict[str, Image.Image]:
    astronaut = Image.fromarray(data.astronaut()).crop((150, 20, 330, 200))
    hopper = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB").crop(
        (110, 40, 420, 350))
    return {"astronaut": astronaut.resize((64, 64)), "hopper": hopper.resize((64, 64))}


def make_stimuli(root: Path) -> Path:
    """Write ``root/manifest.csv`` and ``root/images/*.png``; return ``root``."""
    (root / "images").mkdir(parents=True)
    rows = []
    for identity, face in faces().items():
        for condition, intensity, engine in CONDITIONS:
            factor = 1.0 + BRIGHTNESS[condition] * intensity + (0.05 if engine == "diffusion" else 0.0)
            name = f"{identity}_{condition}_{intensity:.1f}_{engine}.png"
            image = ImageEnhance.Brightness(face).enhance(factor)
            image.save(root / "images" / name)
            aus = preset_vector(condition, intensity).to_text() if condition in EMOTIONS else "R12:0.6,R14:0.3"
            rows.append({
                "file": name, "identity": identity, "condition": condition, "intensity": intensity, "engine": engine,
                "target_aus": aus, "measured_aus": aus, "identity_distance": f"{0.01 * intensity:.3f}",
                "seed": 7, "params": json.dumps({"strength": 0.3, "steps": 20}), "aufx_version": __version__,
                "sha256": hashlib.sha256((root / "images" / name).read_bytes()).hexdigest(),
            })
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root
