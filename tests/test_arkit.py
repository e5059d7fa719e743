"""ARKit JSONL: Apple's blendshape order, the AU table (as data), validation by line, resampling and export."""
import json

import numpy as np
import pytest

from aufx.au import AUVector, channels
from aufx.io.arkit import (MAP_FILE, ARKitFormatError, au_to_blendshapes, blendshape_names, blendshapes_to_au,
                           read_arkit_jsonl, write_arkit_jsonl)
from aufx.io.tracks import AUTrack, channel_index

APPLE_ORDER = """eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft
eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight eyeWideRight
jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft mouthRight mouthSmileLeft
mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft mouthDimpleRight mouthStretchLeft mouthStretchRight
mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthPressLeft mouthPressRight mouthLowerDownLeft
mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight browDownLeft browDownRight browInnerUp browOuterUpLeft
browOuterUpRight cheekPuff cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight tongueOut""".split()
IDX = {name: i for i, name in enumerate(APPLE_ORDER)}


def frame(**weights: float) -> list[float]:
    values = [0.0] * 52
    for name, w in weights.items():
        values[IDX[name]] = w
    return values


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"timestamp": t, "blendshapes": bs}) + "\n" for t, bs in rows))
    return path


def test_order_and_table_are_documented_data():
    assert blendshape_names() == tuple(APPLE_ORDER) and len(APPLE_ORDER) == 52
    data = json.loads(MAP_FILE.read_text())
    assert "APPROXIMATE" in data["description"] and "subject's own left" in data["sides"]
    assert all("note" in e for e in data["blendshapes"])


def test_mapping_sides_ramps_and_means():
    values = blendshapes_to_au(frame(mouthSmileLeft=0.7, eyeBlinkRight=1.0, browInnerUp=0.5, mouthPressLeft=0.6,
                                     mouthPressRight=0.2, mouthShrugLower=0.3, jawOpen=0.4, cheekPuff=1.0,
                                     eyeLookUpLeft=1.0))
    au = AUVector.clipped(dict(zip(channels(), values)))
    assert au["L12"] == pytest.approx(0.7) and au["R12"] == 0.0          # ARKit Left = subject's left = L
    assert au["R45"] == 1.0 and au["L45"] == 0.0 and au["R43"] == 0.0
    assert au["L01"] == au["R01"] == pytest.approx(0.5)
    assert au["AU24"] == pytest.approx(0.4)                              # mean of both press sides
    assert au["AU17"] == pytest.approx(0.3)
    assert (au["AU25"], au["AU26"], au["AU27"]) == pytest.approx((1.0, 0.25 / 0.35, 0.0))  # jaw by degree
    assert sum(au.values()) == pytest.approx(0.7 + 1 + 1 + 0.4 + 0.3 + 1 + 0.25 / 0.35)  # gaze, puff: no AU


def test_jaw_open_degrees():
    au = blendshapes_to_au(np.array([frame(jawOpen=x) for x in (0.1, 0.15, 0.75, 1.0)]))
    cols = [channel_index()[c] for c in ("AU25", "AU26", "AU27")]
    np.testing.assert_allclose(au[:, cols], [[2 / 3, 0, 0], [1, 0, 0], [1, 1, 0.5], [1, 1, 1]])


def test_mirror_swaps_sides():
    au = blendshapes_to_au(frame(mouthSmileLeft=0.9), mirror=True)
    assert au[channel_index()["R12"]] == pytest.approx(0.9) and au[channel_index()["L12"]] == 0.0
    assert au_to_blendshapes(au, mirror=True)[IDX["mouthSmileLeft"]] == pytest.approx(0.9)


def test_read_60fps_and_resample_to_30(tmp_path):
    times = [round(i / 60, 4) for i in range(61)]  # exporters round: 0.0167, 0.0333, ...
    path = write_jsonl(tmp_path / "take.jsonl",
                       [(t, frame(mouthSmileLeft=t, mouthSmileRight=0.5, browInnerUp=1 - t)) for t in times])
    rec = read_arkit_jsonl(path)
    assert rec.blendshapes.shape == (61, 52) and rec.fps == pytest.approx(60, abs=0.3)
    track = rec.to_au_track()
    np.testing.assert_allclose(track.column("L12"), times)
    resampled = track.resample(30)
    assert len(resampled) == 31 and resampled.fps == 30
    np.testing.assert_allclose(resampled.times, np.arange(31) / 30)
    np.testing.assert_allclose(resampled.column("L12"), np.arange(31) / 30, atol=1e-9)
    np.testing.assert_allclose(resampled.column("R12"), 0.5)
    np.testing.assert_allclose(resampled.column("AU01"), 1 - np.arange(31) / 30, atol=1e-9)
    assert resampled.vector(15)["L12"] == pytest.approx(0.5)


def test_read_30fps_and_resample_to_60(tmp_path):
    smile = [0.0, 0.6, 0.2, 1.0]
    path = write_jsonl(tmp_path / "take.jsonl", [(10 + i / 30, frame(mouthSmileLeft=s)) for i, s in enumerate(smile)])
    rec = read_arkit_jsonl(path)
    assert rec.fps == pytest.approx(30)
    up = rec.to_au_track().resample(60)
    assert len(up) == 7 and up.times[0] == 10.0  # keeps the recording's clock
    np.testing.assert_allclose(up.column("L12"), [0.0, 0.3, 0.6, 0.4, 0.2, 0.6, 1.0], atol=1e-9)


def test_export_round_trip(tmp_path):
    names = ("mouthSmileLeft", "eyeBlinkRight", "browInnerUp", "jawOpen", "mouthPressLeft", "mouthPressRight",
             "noseSneerLeft", "mouthLowerDownRight", "eyeWideLeft")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        w = {n: float(v) for n, v in zip(names, rng.uniform(0, 1, len(names)))}
        w["mouthPressRight"] = w["mouthPressLeft"]  # AU24 is one midline value
        rows.append((i / 30, frame(**w)))
    rec = read_arkit_jsonl(write_jsonl(tmp_path / "in.jsonl", rows))
    back = read_arkit_jsonl(write_arkit_jsonl(tmp_path / "out.jsonl", rec.to_au_track()))
    np.testing.assert_allclose(back.times, rec.times, atol=1e-6)  # exported with 6 decimals
    np.testing.assert_allclose(back.blendshapes, rec.blendshapes, atol=1e-6)


def test_export_merges_aus_without_blendshape(tmp_path):
    track = AUTrack.from_vectors([AUVector({"AU43": 0.7, "AU23": 0.5, "AU24": 0.2}), AUVector()], fps=30)
    path = write_arkit_jsonl(tmp_path / "o.jsonl", track)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["timestamp"] for line in lines] == [0.0, 0.033333]
    bs = lines[0]["blendshapes"]
    assert bs[IDX["eyeBlinkLeft"]] == bs[IDX["eyeBlinkRight"]] == 0.7
    assert bs[IDX["mouthPressLeft"]] == bs[IDX["mouthPressRight"]] == 0.5
    assert sum(lines[1]["blendshapes"]) == 0


@pytest.mark.parametrize("lines, expected", [
    (['{"timestamp": 0.0, "blendshapes": ZEROS}', '{"timestamp": 0.033, "blendshapes": [0.1, 0.2]}'],
     r"line 2: 'blendshapes' must be a list of 52 values .*got 2"),
    (['{"timestamp": 0.0, "blendshapes": ZEROS}', '', '{"timestamp": 0.03 "blendshapes": ZEROS}'],
     r"line 3: not valid JSON"),
    (['{"timestamp": 0.0, "blendshapes": JAW}'],
     r"line 1: blendshape 17 \(jawOpen\) = 1.5 is not a number in \[0, 1\]"),
    (['{"timestamp": 0.0, "blendshapes": ZEROS}', '{"timestamp": 0.05, "blendshapes": ZEROS}',
      '{"timestamp": 0.04, "blendshapes": ZEROS}'],
     r"line 3: timestamp 0.04 does not come after 0.05 \(line 2\); timestamps must increase"),
    (['{"timestamp": 0.0, "blendshapes": ZEROS}', '{"timestamp": 0.0, "blendshapes": ZEROS}'],
     r"line 2: timestamp 0.0 does not come after 0.0"),
    (['{"time": 0.0, "blendshapes": ZEROS}'], r"line 1: expected an object with 'timestamp' and 'blendshapes'"),
    (['{"timestamp": "0.1", "blendshapes": ZEROS}'], r"line 1: timestamp '0.1' is not a finite number"),
    ([''], r"no frames"),
])
def test_validation_names_the_line(tmp_path, lines, expected):
    zeros = json.dumps([0.0] * 52)
    jaw = json.dumps(frame(jawOpen=1.5))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines).replace("ZEROS", zeros).replace("JAW", jaw) + "\n")
    with pytest.raises(ARKitFormatError, match=expected) as info:
        read_arkit_jsonl(path)
    assert isinstance(info.value, ValueError) and "bad.jsonl" in str(info.value)
