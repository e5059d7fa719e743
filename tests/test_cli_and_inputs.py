"""`python -m aufx edit/estimate` end to end, and every kind of awkward input a researcher's folder contains."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from aufx.cli import main
from aufx.io.images import ImageReadError, load_image, read_png_metadata


@pytest.fixture(scope="module")
def face_png(tmp_path_factory, grace):
    path = tmp_path_factory.mktemp("in") / "grace.png"
    Image.fromarray(grace).save(path)
    return path


def run_cli(*args) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "aufx", *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_edit_writes_full_resolution_image_and_sidecar(face_png, tmp_path, grace):
    out = tmp_path / "new" / "deeper" / "out.png"
    code, stdout, stderr = run_cli("edit", "--input", face_png, "--au", "AU12:0.8,AU06:0.6", "--output", out)
    assert code == 0, stderr
    img = np.asarray(Image.open(out))
    assert img.shape == grace.shape and not np.array_equal(img, grace)
    meta = json.loads((tmp_path / "new" / "deeper" / "out.png.json").read_text())
    for key in ("target_aus", "measured_input", "measured_output", "engine", "engine_params", "face", "aufx_version",
                "timings_ms"):
        assert key in meta, key
    assert meta["target_aus"]["AU12"] == 0.8 and meta["target_aus"]["AU06"] == 0.6
    assert meta["engine"] == "warp" and len(meta["face"]["box"]) == 4
    from aufx.resources import code_digest

    assert meta["aufx_code"] == code_digest()  # which code made the image (the version string stays put)
    from aufx.au import AUVector

    assert AUVector(meta["measured_output"]).au("AU12") > AUVector(meta["measured_input"]).au("AU12")
    assert read_png_metadata(out)["target_aus"] == meta["target_aus"]  # the PNG carries it too
    assert json.loads(stdout)["output"] == str(out)


def test_preset_with_override_and_face_choice(tmp_path, grace):
    # two faces side by side: --face 0 is the larger, --face 1 the smaller copy
    small = cv2.resize(grace, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((grace.shape[0], grace.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, :grace.shape[1]] = grace
    canvas[:small.shape[0], grace.shape[1]:] = small
    src = tmp_path / "two.png"
    Image.fromarray(canvas).save(src)
    for face, side in ((0, slice(0, grace.shape[1])), (1, slice(grace.shape[1], None))):
        out = tmp_path / f"f{face}.png"
        code, _, err = run_cli("edit", "-i", src, "--preset", "happy", "--intensity", "0.8", "--au", "AU26:0.3",
                               "--face", face, "-o", out)
        assert code == 0, err
        res = np.asarray(Image.open(out))
        changed = (res != canvas).any(axis=2)
        assert changed[:, side].sum() > 50 and changed.sum() == changed[:, side].sum()
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        assert meta["target_aus"]["AU12"] == pytest.approx(0.64) and meta["target_aus"]["AU26"] == 0.3
        assert meta["faces_found"] == 2 and meta["face_index"] == face
    code, _, err = run_cli("edit", "-i", src, "--au", "AU12:0.5", "--face", 5, "-o", tmp_path / "x.png")
    assert code == 2 and "face 5 requested but 2 found" in err


def test_estimate_prints_one_object_per_face(face_png):
    code, stdout, err = run_cli("estimate", "--input", face_png)
    assert code == 0, err
    faces = json.loads(stdout)
    assert len(faces) == 1 and set(faces[0]["aus"]) >= {"AU01", "AU12", "AU45"}
    assert all(0.0 <= v <= 1.0 for v in faces[0]["aus"].values())


@pytest.mark.parametrize("content, message", [
    (lambda: cv2.imencode(".png", np.full((200, 200, 3), 127, np.uint8))[1].tobytes(), "no face found"),
    (lambda: b"this is not an image", "not a readable image"),
    (lambda: b"", "empty"),
])
def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, content, message):
    src = tmp_path / "bad.png"
    src.write_bytes(content())
    out = tmp_path / "out.png"
    assert main(["edit", "-i", str(src), "--au", "AU12:0.5", "-o", str(out)]) == 2
    assert not out.exists() and not (tmp_path / "out.png.json").exists()
    code, _, err = run_cli("edit", "-i", src, "--au", "AU12:0.5", "-o", out)
    assert code == 2 and message in err and "bad.png" in err


def test_bad_au_values_and_never_overwrite_input(face_png, tmp_path, capsys):
    assert main(["edit", "-i", str(face_png), "--au", "AU12:1.7", "-o", str(tmp_path / "o.png")]) == 2
    assert "AU12:1.7" in capsys.readouterr().err
    assert main(["edit", "-i", str(face_png), "--au", "AU99:0.2", "-o", str(tmp_path / "o.png")]) == 2
    assert "AU99" in capsys.readouterr().err
    before = face_png.read_bytes()
    assert main(["edit", "-i", str(face_png), "--au", "AU12:0.5", "-o", str(face_png)]) == 2
    assert "never overwrites its input" in capsys.readouterr().err and face_png.read_bytes() == before
    assert main(["edit", "-i", str(tmp_path / "missing.jpg"), "--au", "AU12:0.5", "-o", str(tmp_path / "o.png")]) == 2


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_awkward_image_formats_load_upright_and_find_the_face(grace):
    from aufx.face.analysis import analyze_faces

    gray = np.asarray(Image.fromarray(grace).convert("L"))
    cases = {
        "grayscale": _encode(Image.fromarray(gray), "PNG"),
        "rgba": _encode(Image.fromarray(np.dstack([grace, np.full(grace.shape[:2], 255, np.uint8)])), "PNG"),
        "16-bit gray": _encode(Image.fromarray((gray.astype(np.uint16) * 257)), "PNG"),
        "16-bit rgb": cv2.imencode(".png", (grace[..., ::-1].astype(np.uint16) * 257))[1].tobytes(),
    }
    # EXIF orientation 6: the camera stored the pixels rotated; viewers (and we) turn them upright
    rotated = Image.fromarray(np.rot90(grace, k=1).copy())
    exif = rotated.getexif()
    exif[0x0112] = 6
    cases["exif-rotated"] = _encode(rotated, "JPEG", exif=exif.tobytes(), quality=95)
    for name, data in cases.items():
        img = load_image(data, name=name)
        assert img.dtype == np.uint8 and img.shape == grace.shape, name
        assert len(analyze_faces(img)) == 1, name
    assert np.abs(load_image(cases["16-bit rgb"]).astype(int) - grace).max() <= 1


def test_huge_and_decompression_bomb_images(tmp_path, grace):
    from aufx.pipeline import Editor

    big = cv2.resize(grace, (grace.shape[1] * 8, grace.shape[0] * 8), interpolation=cv2.INTER_LINEAR)  # 4096x4800
    ed = Editor(big, name="big")
    assert ed.face().pose.scale > 8 * 60  # analysed on a bounded copy, mapped back to full resolution
    res = ed.edit(ed.measured().updated({"AU12": 0.8}), measure_output=False)
    assert res.image.shape == big.shape
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 megapixels that compress to almost nothing
    with pytest.raises(ImageReadError, match="megapixel"):
        load_image(bomb)
