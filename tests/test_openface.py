"""OpenFace 2.x CSVs: the real layout (space after each comma), exclusions, normalisation and clear errors."""
import numpy as np
import pandas as pd
import pytest

from aufx.io.openface import (OPENFACE_AUS, OPENFACE_PRESENCE_AUS, OpenFaceFormatError, read_openface_csv,
                              write_openface_csv)

R_HEADER = ", ".join(f"{a}_r" for a in OPENFACE_AUS)
C_HEADER = ", ".join(f"{a}_c" for a in OPENFACE_PRESENCE_AUS)


def test_au_lists_are_openface_2():
    assert len(OPENFACE_AUS) == 17 and OPENFACE_AUS[0] == "AU01" and OPENFACE_AUS[-1] == "AU45"
    assert OPENFACE_PRESENCE_AUS == tuple(sorted(OPENFACE_AUS + ("AU28",)))


def test_writer_uses_the_real_feature_extraction_layout(tmp_path):
    path = write_openface_csv(tmp_path / "clip.csv", [{"AU12_r": 4.0, "AU06_r": 2.5}, {"AU12_r": 0.5}])
    lines = path.read_text().splitlines()
    assert lines[0] == f"frame, face_id, timestamp, confidence, success, {R_HEADER}, {C_HEADER}"
    assert "AU26_c, AU28_c, AU45_c" in lines[0]
    values = lines[1].split(", ")
    assert values[:5] == ["1", "0", "0.000", "0.98", "1"]
    assert values[5 + OPENFACE_AUS.index("AU12")] == "4.00"
    assert values[5 + 17 + OPENFACE_PRESENCE_AUS.index("AU12")] == "1.0"  # presence default: AU12_r >= 1
    assert lines[2].split(", ")[2] == "0.033"  # timestamp (frame - 1) / 30 with OpenFace's 3 decimals
    assert lines[2].split(", ")[5 + 17 + OPENFACE_PRESENCE_AUS.index("AU12")] == "0.0"


def test_writer_rejects_unknown_columns(tmp_path):
    with pytest.raises(ValueError, match="AU12r"):
        write_openface_csv(tmp_path / "x.csv", [{"AU12r": 3.0}])
    with pytest.raises(ValueError, match="success"):
        write_openface_csv(tmp_path / "x.csv", [{"success": 1}], kind="image")  # FaceLandmarkImg has none


def test_video_csv_exclusions_and_normalisation(tmp_path):
    rows = [
        {"AU12_r": 4.0, "AU06_r": 2.5},
        {"AU12_r": 3.0, "success": 0, "confidence": 0.1},  # failed: counted once, as failed
        {"AU12_r": 3.0, "confidence": 0.79},               # low confidence
        {"AU12_r": 5.3, "AU45_r": -0.2},                   # outside 0..5: clipped
        {"AU12_r": 1.23, "confidence": 0.80},              # exactly at the threshold: kept
    ]
    table = read_openface_csv(write_openface_csv(tmp_path / "clip.csv", rows))
    assert table.kind == "video"
    assert (table.n_failed, table.n_low_confidence, len(table.kept), len(table.rows)) == (1, 1, 3, 5)
    assert table.rows["status"].tolist() == ["ok", "failed", "low_confidence", "ok", "ok"]
    assert table.kept["frame"].tolist() == [1, 4, 5]
    np.testing.assert_allclose(table.kept["AU12"], [0.8, 1.0, 0.246])
    np.testing.assert_allclose(table.kept["AU06"], [0.5, 0.0, 0.0])
    assert table.kept["AU45"].tolist() == [0.0, 0.0, 0.0]
    assert table.kept["AU12_c"].tolist() == [1, 1, 1] and table.kept["AU06_c"].tolist() == [1, 0, 0]
    assert table.missing_aus == ()


def test_min_confidence_is_configurable(tmp_path):
    path = write_openface_csv(tmp_path / "clip.csv", [{"confidence": 0.6}, {"confidence": 0.95}])
    assert read_openface_csv(path).n_low_confidence == 1
    assert read_openface_csv(path, min_confidence=0.5).n_low_confidence == 0
    assert read_openface_csv(path, min_confidence=0.99).n_low_confidence == 2
    with pytest.raises(ValueError, match="min_confidence"):
        read_openface_csv(path, min_confidence=80)


def test_hand_written_feature_extraction_file_with_pose_and_gaze(tmp_path):
    """A file as OpenFace writes it with all outputs on: extra columns are ignored, spacing is stripped."""
    header = f"frame, face_id, timestamp, confidence, success, gaze_0_x, gaze_angle_x, pose_Tx, pose_Rx, x_0, y_0, " \
             f"{R_HEADER}, {C_HEADER}"
    r = ["0.00"] * 17
    r[OPENFACE_AUS.index("AU01")], r[OPENFACE_AUS.index("AU26")] = "1.50", "2.75"
    c = ["0.0"] * 18
    c[OPENFACE_PRESENCE_AUS.index("AU28")] = "1.0"
    row1 = ", ".join(["1", "0", "0.000", "0.98", "1", "0.052", "-0.031", "12.3", "0.107", "301.2", "188.7", *r, *c])
    row2 = ", ".join(["2", "0", "0.040", "0.03", "0", "0.000", "0.000", "0.0", "0.000", "0.0", "0.0",
                      *(["0"] * 17), *(["0"] * 18)])
    path = tmp_path / "real.csv"
    path.write_bytes(f"\ufeff{header}\r\n{row1}\r\n{row2}\r\n".encode())  # as re-saved by Excel: BOM, CRLF
    table = read_openface_csv(path)
    assert table.kind == "video" and table.n_failed == 1 and len(table.kept) == 1
    kept = table.kept.iloc[0]
    assert kept["AU01"] == pytest.approx(0.3) and kept["AU26"] == pytest.approx(0.55)
    assert kept["AU28_c"] == 1 and kept["timestamp"] == 0.0
    assert "pose_Tx" not in table.rows.columns


def test_face_landmark_img_csv(tmp_path):
    rows = [{"AU04_r": 2.0, "confidence": 0.93}, {"AU04_r": 4.0, "confidence": 0.42}]
    path = write_openface_csv(tmp_path / "group.csv", rows, kind="image")
    assert path.read_text().startswith(f"face, confidence, {R_HEADER}, {C_HEADER}\n0, 0.930, ")
    table = read_openface_csv(path)
    assert table.kind == "image"
    assert table.rows["face"].tolist() == [0, 1]
    assert (table.n_failed, table.n_low_confidence) == (0, 1)
    assert table.kept["AU04"].tolist() == [0.4]


def test_au_vectors_and_track(tmp_path):
    rows = [{"frame": f, "timestamp": (f - 1) / 25, "AU12_r": f, "AU17_r": 1.0} for f in (1, 2, 3)]
    rows[1]["success"] = 0
    table = read_openface_csv(write_openface_csv(tmp_path / "clip.csv", rows))
    vectors = table.au_vectors()
    assert len(vectors) == 2
    assert vectors[1]["L12"] == vectors[1]["R12"] == pytest.approx(0.6) and vectors[1]["AU17"] == pytest.approx(0.2)
    track = table.to_au_track()
    np.testing.assert_allclose(track.times, [0.0, 0.08])
    np.testing.assert_allclose(track.column("AU12"), [0.2, 0.6])
    np.testing.assert_allclose(track.column("R12"), [0.2, 0.6])


def test_track_needs_one_face(tmp_path):
    rows = [{"frame": 1, "face_id": 0, "AU12_r": 1.0}, {"frame": 1, "face_id": 1, "AU12_r": 3.0}]
    table = read_openface_csv(write_openface_csv(tmp_path / "multi.csv", rows))
    with pytest.raises(OpenFaceFormatError, match=r"several faces \(face_id \[0, 1\]\)"):
        table.to_au_track()
    np.testing.assert_allclose(table.to_au_track(face_id=1).column("AU12"), [0.6])


def test_partial_au_columns_are_reported(tmp_path):
    path = tmp_path / "partial.csv"
    path.write_text("face, confidence, AU06_r, AU12_r\n0, 0.9, 1.0, 2.0\n")
    table = read_openface_csv(path)
    assert table.aus == ("AU06", "AU12") and table.presence_aus == ()
    assert len(table.missing_aus) == 15 and "AU45" in table.missing_aus


@pytest.mark.parametrize("text, expected", [
    ("name,score\nface1,3\n", "no AU intensity columns"),
    ("", "empty file"),
    ("AU12_r, AU06_r\n1, 2\n", "no 'frame' column"),
    ("frame, AU12_r\n1, 2\n", "no 'confidence' column"),
    ("frame, confidence, success, AU12_r\n1, 0.9, 1, 2.0\n2, 0.9, 1, n/a\n", r"line 3: column 'AU12_r'"),
])
def test_not_openface_gives_a_clear_error(tmp_path, text, expected):
    path = tmp_path / "survey.csv"
    path.write_text(text)
    with pytest.raises(OpenFaceFormatError, match=expected) as info:
        read_openface_csv(path)
    assert isinstance(info.value, ValueError) and "survey.csv" in str(info.value)


def test_reader_output_is_a_dataframe_with_status(tmp_path):
    table = read_openface_csv(write_openface_csv(tmp_path / "c.csv", [{}]))
    assert isinstance(table.rows, pd.DataFrame)
    assert list(table.rows.columns[:5]) == ["frame", "face_id", "timestamp", "confidence", "success"]
    assert table.rows.columns[-1] == "status"
