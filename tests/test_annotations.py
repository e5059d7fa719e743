"""Annotation CSVs from images + real-format OpenFace CSVs: pairing rules, exclusions and the report."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aufx.io.openface import OPENFACE_AUS, write_openface_csv
from aufx.training.annotations import (AnnotationConfig, build_annotations, main, normalise_name, parse_au_key,
                                  report_path)

ROOT = Path(__file__).resolve().parents[1]


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not decoded: pairing uses names only")


@pytest.fixture()
def dataset(tmp_path):
    """Images and OpenFace output as researchers have them, with every kind of mismatch."""
    img, of = tmp_path / "Train", tmp_path / "OpenFace_AU_Train"
    touch(img, "ｆａｃｅ１.jpg", "face2.PNG", "Face  3.jpeg", "group.jpg", "alone.jpg", "readme.txt",
          *(f"clip_{i:06d}.jpg" for i in range(1, 6)),   # ffmpeg style: 1-based, zero padded
          *(f"vid-{i}.png" for i in range(4)))           # OpenCV style: 0-based, unpadded
    touch(img / "sub", "deep.webp")
    write_openface_csv(of / "face1.csv", [{"AU12_r": 4.0, "AU06_r": 3.0}], kind="image")
    write_openface_csv(of / "face2_of.csv", [{"AU04_r": 2.0, "AU45_r": 5.0}])   # FeatureExtraction on one image
    (of / "face 3_of.csv").write_text("face, confidence, AU06_r, AU12_r\n0, 0.91, 1.00, 2.00\n")  # partial AUs
    write_openface_csv(of / "group.csv", [{"AU12_r": 1.0, "confidence": 0.90},
                                          {"AU12_r": 4.5, "confidence": 0.95}], kind="image")
    clip = [{"frame": f, "AU12_r": f * 0.5} for f in range(1, 7)]
    clip[2]["success"] = 0          # frame 3
    clip[3]["confidence"] = 0.5     # frame 4
    write_openface_csv(of / "clip.csv", clip)
    write_openface_csv(of / "vid_of.csv", [{"frame": f, "AU12_r": float(f)} for f in range(1, 5)])
    write_openface_csv(of / "sub" / "deep.csv", [{"AU20_r": 2.5}], kind="image")
    write_openface_csv(of / "orphan.csv", [{"AU12_r": 1.0}], kind="image")
    (of / "survey.csv").write_text("participant,rating\np1,4\n")
    return img, of


def test_name_normalisation():
    assert normalise_name("ｆａｃｅ１") == normalise_name("face1") == "face1"
    assert normalise_name(" Face \u3000 3 ") == "face 3"
    assert normalise_name("STRASSE") == normalise_name("straße")


def test_au_keys():
    assert [parse_au_key(k) for k in ("AU1", "au01", "12", "AU45")] == ["AU01", "AU01", "AU12", "AU45"]
    with pytest.raises(ValueError, match="AU99"):
        parse_au_key("AU99")


def test_build_pairs_everything_and_reports_the_rest(dataset, tmp_path):
    img, of = dataset
    table, report = build_annotations(AnnotationConfig(img, of, tmp_path / "out.csv"))
    assert list(table.columns) == ["image_path", *OPENFACE_AUS]
    rows = {Path(p).name: r for p, r in zip(table["image_path"], table.to_dict("records"))}
    assert sorted(rows) == sorted(["ｆａｃｅ１.jpg", "face2.PNG", "Face  3.jpeg", "group.jpg", "deep.webp",
                                   "clip_000001.jpg", "clip_000002.jpg", "clip_000005.jpg",
                                   "vid-0.png", "vid-1.png", "vid-2.png", "vid-3.png"])
    assert rows["ｆａｃｅ１.jpg"]["image_path"] == (img / "ｆａｃｅ１.jpg").as_posix()
    assert rows["ｆａｃｅ１.jpg"]["AU12"] == pytest.approx(0.8) and rows["ｆａｃｅ１.jpg"]["AU06"] == pytest.approx(0.6)
    assert rows["face2.PNG"]["AU04"] == pytest.approx(0.4) and rows["face2.PNG"]["AU45"] == pytest.approx(1.0)
    assert rows["Face  3.jpeg"]["AU12"] == pytest.approx(0.4) and rows["Face  3.jpeg"]["AU45"] == 0.0
    assert rows["group.jpg"]["AU12"] == pytest.approx(0.9)          # the more confident face
    assert rows["deep.webp"]["AU20"] == pytest.approx(0.5)
    assert [rows[f"clip_{f:06d}.jpg"]["AU12"] for f in (1, 2, 5)] == pytest.approx([0.1, 0.2, 0.5])
    assert [rows[f"vid-{i}.png"]["AU12"] for i in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])  # frame i+1

    assert (report.n_images, report.n_csvs, report.matched_csvs, report.rows_written) == (15, 9, 7, 12)
    assert report.matched_images == 14  # clip_000003/4 are paired but excluded
    assert (report.excluded_failed, report.excluded_low_confidence) == (1, 1)
    assert report.images_without_csv == ["alone.jpg"]
    assert report.csvs_without_image == ["orphan.csv: no image named orphan.<ext>"]
    assert report.invalid_csvs == ["survey.csv: no AU intensity columns (AU01_r ... AU45_r); not OpenFace output, "
                                   "or OpenFace was run without -aus"]
    assert report.videos == ["clip.csv: 5 frames paired as clip_%06d, 1-based; CSV frames without an image: 6",
                             "vid_of.csv: 4 frames paired as vid-%d, 0-based"]
    assert report.exclusions == ["clip.csv: 1 with success=0 (frame 3); 1 with confidence < 0.8 (frame 4)"]
    assert report.several_faces == ["group.csv: 1 image with several faces"]
    assert dict(report.missing_aus) == {a: ["face 3_of.csv"] for a in OPENFACE_AUS if a not in ("AU06", "AU12")}
    assert report.ambiguous == []


def test_main_writes_csv_report_and_summary_last(dataset, tmp_path, capsys):
    img, of = dataset
    out = tmp_path / "data" / "annotations_train.csv"
    code = main(["--img_dir", str(img), "--openface_dir", str(of), "--out_csv", str(out),
                 "--au_keys", "AU12", "AU6", "AU16", "--use_c", "--min_confidence", "0.4"])
    assert code == 0
    written = pd.read_csv(out)
    assert list(written.columns) == ["image_path", "AU12", "AU06", "AU16", "AU12_c", "AU06_c", "AU16_c"]
    assert len(written) == 13  # frame 4 (confidence 0.5) now passes
    clip4 = written[written["image_path"].str.endswith("clip_000004.jpg")].iloc[0]
    assert (clip4["AU12"], clip4["AU12_c"], clip4["AU16"], clip4["AU16_c"]) == (0.4, 1, 0.0, 0)
    printed = capsys.readouterr().out.strip().splitlines()
    summary = ("summary: images=15 csvs=9 matched_csvs=7 matched_images=14 rows_written=13 excluded_success0=1 "
               "excluded_low_confidence=0 images_without_csv=1 csvs_without_image=1 invalid_csvs=1 ambiguous=0")
    assert printed[-1] == summary
    assert "  alone.jpg" in printed and "  orphan.csv: no image named orphan.<ext>" in printed
    assert any(line.startswith("  AU16 (OpenFace does not measure AU16): 7 CSV(s)") for line in printed)
    assert any(line.startswith("  AU06_c: 1 CSV(s): face 3_of.csv") for line in printed)
    saved = report_path(out).read_text().splitlines()
    assert saved[-1] == summary and "  alone.jpg" in saved


def test_ambiguous_names_are_reported_not_guessed(tmp_path):
    img, of = tmp_path / "img", tmp_path / "of"
    touch(img, "ｂ.jpg", "b.png", "a.jpg")
    write_openface_csv(of / "a.csv", [{}], kind="image")
    write_openface_csv(of / "a_of.csv", [{}], kind="image")
    write_openface_csv(of / "b.csv", [{}], kind="image")
    table, report = build_annotations(AnnotationConfig(img, of, tmp_path / "o.csv"))
    assert table.empty
    assert report.ambiguous == ["images b.png, ｂ.jpg all read as 'b'", "CSVs a.csv, a_of.csv all annotate 'a'"]
    assert report.images_without_csv == ["a.jpg"]
    assert report.csvs_without_image == ["b.csv: no image named b.<ext>"]


def test_frame_pattern_and_base_can_be_given(tmp_path):
    img, of = tmp_path / "img", tmp_path / "of"
    touch(img, *(f"take_f{i:04d}.jpg" for i in range(3)))
    write_openface_csv(of / "take.csv", [{"frame": f, "AU26_r": f} for f in (1, 2, 3)])
    _, auto = build_annotations(AnnotationConfig(img, of, tmp_path / "o.csv"))
    assert auto.rows_written == 0 and auto.csvs_without_image[0].startswith("take.csv: no image named take.<ext>")
    config = AnnotationConfig(img, of, tmp_path / "o.csv", frame_pattern="{stem}_f{frame:04d}.jpg")
    table, report = build_annotations(config)
    assert report.videos == ["take.csv: 3 frames paired as {stem}_f{frame:04d}.jpg with stem 'take', 0-based"]
    assert table["AU26"].tolist() == pytest.approx([0.2, 0.4, 0.6])
    config = AnnotationConfig(img, of, tmp_path / "o.csv", frame_pattern="{stem}_f{frame:04d}", frame_base=1)
    table, report = build_annotations(config)
    assert table["AU26"].tolist() == pytest.approx([0.2, 0.4])  # frame 1 -> take_f0001; frame 3 has no image
    assert report.images_without_csv == ["take_f0000.jpg"]


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["--img_dir", str(tmp_path / "nope"), "--openface_dir", str(tmp_path), "--out_csv",
                 str(tmp_path / "o.csv")]) == 2
    assert "image folder" in capsys.readouterr().err
    assert main(["--img_dir", str(tmp_path), "--openface_dir", str(tmp_path), "--out_csv", str(tmp_path / "o.csv"),
                 "--au_keys", "AU12", "AU99"]) == 2
    assert "AU99" in capsys.readouterr().err
    assert main(["--img_dir", str(tmp_path), "--openface_dir", str(tmp_path), "--out_csv", str(tmp_path / "o.csv"),
                 "--frame_pattern", "{name}_{frame}"]) == 2


def test_runs_as_a_module(dataset, tmp_path):
    img, of = dataset
    out = tmp_path / "o.csv"
    run = subprocess.run([sys.executable, "-m", "aufx.training.annotations", "--img_dir", str(img), "--openface_dir",
                          str(of), "--out_csv", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("summary: images=15 csvs=9 matched_csvs=7")
    assert len(pd.read_csv(out)) == 12


def test_video_csv_needs_its_frame_images(tmp_path):
    img, of = tmp_path / "img", tmp_path / "of"
    touch(img, "talk.jpg", "walk_001.jpg", "walk_002.jpg")
    write_openface_csv(of / "talk.csv", [{"frame": f} for f in (1, 2, 3)])      # a thumbnail is not its frames
    write_openface_csv(of / "walk.csv", [{"frame": f} for f in (7, 8)])         # numbered images, other frames
    table, report = build_annotations(AnnotationConfig(img, of, tmp_path / "o.csv"))
    assert table.empty and report.matched_csvs == 0
    assert report.csvs_without_image == [
        "talk.csv: 3 frames, but only the single image talk.jpg has its name",
        "walk.csv: frame images walk_%03d, 1-based exist, but none has a frame number of the CSV"]
    assert report.images_without_csv == ["talk.jpg", "walk_001.jpg", "walk_002.jpg"]
