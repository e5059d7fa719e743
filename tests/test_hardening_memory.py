"""Memory follows the work, not the decoded size: the CLI edits a 10900x10900 PNG with a
1000-px face within 1.0 GB peak RSS (the 356 MB decoded image, pasted into in place, and the libraries), at full
resolution, leaving every pixel outside the face as it was; large PNGs are written without a second copy."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from aufx.au import AUVector
from aufx.io.images import load_image, read_png_metadata, save_png

ROOT = Path(__file__).resolve().parents[1]
PEAK = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=False); " \
       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"  # KiB, of the one child it ran


def _huge_photo(path: Path, side: int = 10900) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A gray 10900^2 canvas (BGR) with the astronaut pasted at 5000 px (her face ~1000 px), and the pasted box."""
    from skimage import data

    canvas = np.full((side, side, 3), 128, np.uint8)
    x0, y0, s = 4000, 3000, 5000
    canvas[y0:y0 + s, x0:x0 + s] = cv2.resize(data.astronaut(), (s, s), interpolation=cv2.INTER_CUBIC)[..., ::-1]
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return canvas, (x0, y0, x0 + s, y0 + s)


def test_cli_edits_a_10900_square_png_within_1_gb(tmp_path):
    src, out = tmp_path / "huge.png", tmp_path / "out.png"
    canvas, (x0, y0, x1, y1) = _huge_photo(src)
    run = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "aufx", "edit", "--input", str(src),
                          "--preset", "happy", "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert out.exists(), run.stderr[-2000:]
    peak_mb = int(run.stdout.strip().splitlines()[-1]) / 1024
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["image_size"] == [10900, 10900], run.stderr[-2000:]
    assert AUVector(meta["measured_output"]).au("AU12") > 0.5  # the edited face, re-measured at full resolution
    assert peak_mb <= 1000, f"peak RSS {peak_mb:.0f} MB"  # 831 MB here; a copy of the image would add 356
    fx0, fy0, fx1, fy1 = meta["face"]["box"]
    assert 800 <= fx1 - fx0 <= 1200 and x0 < fx0 < fx1 < x1  # the face, found in a photo 10x its size
    assert read_png_metadata(out)["target_aus"] == meta["target_aus"]
    edited = cv2.imread(str(out))
    assert edited.shape == (10900, 10900, 3)  # full resolution
    assert (edited[:y0] == 128).all() and (edited[y1:] == 128).all()  # untouched outside the photo
    assert (edited[:, :x0] == 128).all() and (edited[:, x1:] == 128).all()
    assert np.abs(edited[fy0:fy1, fx0:fx1].astype(int) - canvas[fy0:fy1, fx0:fx1]).mean() > 1  # the face changed


def test_a_one_shot_edit_pastes_into_its_own_decoded_image_never_into_a_callers_array(astronaut, tmp_path):
    """``run`` pastes into the image it decoded itself (no second full-size array), never into an array the caller
    handed over; an editor whose image was edited in place refuses a second edit instead of editing the edit, and
    the photo's cached analysis keeps nothing of that array."""
    from aufx.pipeline import run
    from aufx.request import EditRequest

    src = tmp_path / "astronaut.png"
    save_png(src, astronaut)
    editor, from_file = run(EditRequest(src, preset="happy", measure=False))
    assert from_file.image is editor.image and not np.array_equal(from_file.image, astronaut)
    with pytest.raises(RuntimeError, match="already edited in place"):
        editor.run(EditRequest(src, preset="sad", measure=False))

    before = astronaut.copy()  # the same photo again (its analysis from the cache): the photo is edited, not the edit
    _, from_array = run(EditRequest(astronaut, name="astronaut", preset="happy", measure=False))
    assert np.array_equal(astronaut, before) and np.array_equal(from_array.image, from_file.image)


def test_large_png_round_trip_leaves_the_array_as_it_was(tmp_path):
    """Above the direct-decode size the encoder swaps channels in place and back: same file, same array."""
    y, x = np.mgrid[:4100, :4000]
    rgb = np.stack([x % 256, y % 256, (x + y) % 251], axis=2).astype(np.uint8)  # channels differ everywhere
    before = rgb.copy()
    path = save_png(tmp_path / "big.png", rgb, {"k": 1})
    assert np.array_equal(rgb, before)
    assert np.array_equal(load_image(path), before) and read_png_metadata(path) == {"k": 1}
    small = save_png(tmp_path / "small.png", before[:64, :64], {"k": 2})
    assert np.array_equal(load_image(small), before[:64, :64]) and read_png_metadata(small) == {"k": 2}
