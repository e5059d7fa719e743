"""Speed of the stimulus builder: stimuli per second with the warp engine on 512^2 faces (a benchmark, not a test).

    python eval/bench_stimuli.py

Two identities (Grace Hopper scaled to 512^2, the astronaut at 512^2) x 4 conditions x 5 intensities, written to a
temp folder as the CLI would (aligned 512^2 crop, oval mask, PNG, manifest, contact sheet), with the re-measurement
of each output and the identity distance switched on and off, since those two dominate the cost. A small build
first loads the models, so the figures are per-stimulus work, not start-up.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from eval.bench import face_image  # noqa: E402

CONDITIONS = {"conditions": [{"name": "happy", "preset": "happy"}, {"name": "sad", "preset": "sad"},
                             {"name": "surprise", "preset": "surprise"}, {"name": "smile", "aus": "AU12:0.8"}],
              "intensities": [0, 0.25, 0.5, 0.75, 1.0]}
VARIANTS = {  # name -> (measure_output, identity_backend)
    "warp only": (False, None),
    "+ measure output": (True, None),
    "+ measure output + identity (dlib)": (True, "dlib"),
}


def _faces(folder: Path) -> Path:
    folder.mkdir()
    Image.fromarray(face_image(512)).save(folder / "grace_hopper.png")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    return folder


def run() -> dict:
    from aufx.study.conditions import parse_conditions
    from aufx.study.identity_distance import IdentityMeter
    from aufx.study.stimuli import build_stimuli
    from aufx.study.stimulus_config import StimulusConfig

    conditions = parse_conditions(CONDITIONS)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        faces = _faces(Path(tmp) / "faces")
        warm = parse_conditions({"conditions": CONDITIONS["conditions"][:1], "intensities": [1.0]})
        build_stimuli(StimulusConfig(faces, warm, Path(tmp) / "warm"))
        for i, (name, (measure, backend)) in enumerate(VARIANTS.items()):
            if backend and not IdentityMeter(backend).available:
                results[name] = {"skipped": IdentityMeter(backend).reason}
                continue
            config = StimulusConfig(faces, conditions, Path(tmp) / f"out{i}", size=512, measure_output=measure,
                                    identity_backend=backend)
            t0 = time.perf_counter()
            summary = build_stimuli(config)
            seconds = time.perf_counter() - t0
            results[name] = {"stimuli": summary.rendered, "seconds": round(seconds, 2),
                             "stimuli_per_s": round(summary.rendered / seconds, 1),
                             "ms_per_stimulus": round(seconds / summary.rendered * 1000, 1)}
    return {"cpu_count": os.cpu_count(), "size": 512, "engine": "warp", "variants": results}


def main() -> int:
    report = run()
    print(f"stimulus builder, warp engine, 512^2 faces and crops, {report['cpu_count']} CPU cores")
    print(f"{'variant':40s} {'stimuli/s':>10s} {'ms each':>8s}")
    for name, r in report["variants"].items():
        if "skipped" in r:
            print(f"{name:40s} skipped: {r['skipped']}")
        else:
            print(f"{name:40s} {r['stimuli_per_s']:10.1f} {r['ms_per_stimulus']:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
