"""Pairing rules of the evaluation (aufx/evaluation/pairing.py) on tiny synthetic files: no models involved."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aufx.evaluation.pairing import base_name, pair_images, read_annotations


def _img(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    refs, gens = tmp_path / "refs", tmp_path / "gens"
    _img(refs / "anna.png")
    _img(refs / "sub" / "ben.jpg")
    _img(refs / "twin.png")
    _img(refs / "twin.jpg")
    _img(refs / "unused.png")
    return refs, gens


def test_base_name_drops_the_suffix_after_double_underscore(tmp_path):
    assert base_name(tmp_path / "anna__happy_0.50.png") == "anna"
    assert base_name(tmp_path / "anna_smile.png") == "anna_smile"


def test_pairs_by_name_csv_and_sidecar_and_reports_the_rest(folders, tmp_path):
    refs, gens = folders
    _img(gens / "anna__sad_0.50.png")
    _img(gens / "deep" / "ben__x.png")
    _img(gens / "twin__happy.png")
    _img(gens / "ghost.png")
    _img(gens / "side.png")
    (gens / "side.png.json").write_text(json.dumps({"input": "/elsewhere/anna.png", "target_aus": {"L12": 0.5},
                                                    "emotion": "Happiness", "face": {"box": [1, 2, 7, 8]}}))
    _img(gens / "anna__oddbox.png")
    (gens / "anna__oddbox.png.json").write_text(json.dumps({"input": "anna.png", "face": {"box": "1,2"}}))
    _img(gens / "broken.png")
    (gens / "broken.png.json").write_text("{not json")
    _img(gens / "badau.png")
    (gens / "badau.png.json").write_text(json.dumps({"input": "anna.png", "target_aus": {"AU99": 0.5}}))
    (tmp_path / "ann.csv").write_text("image_path, AU12, AU04, split\nx/anna.png, 0.5, 1.2, test\n")
    result = pair_images(gens, refs, read_annotations(tmp_path / "ann.csv"))
    pairs = {p.gen.name: p for p in result.pairs}
    assert set(pairs) == {"anna__sad_0.50.png", "ben__x.png", "side.png", "anna__oddbox.png"}
    sad = pairs["anna__sad_0.50.png"]
    assert sad.source == refs / "anna.png" and sad.target_from == "csv"
    assert sad.targets.au("AU04") == 1.0 and sad.targets.au("AU12") == 0.5  # clipped, both sides
    assert (sad.intended, sad.intended_from) == ("sad", "filename")
    ben = pairs["ben__x.png"]
    assert ben.source == refs / "sub" / "ben.jpg" and ben.targets is None and ben.intended is None
    side = pairs["side.png"]
    assert side.source == refs / "anna.png"  # the sidecar's path is elsewhere: found by its name in refs
    assert side.targets["L12"] == 0.5 and side.targets["R12"] == 0.0 and side.target_from == "sidecar"
    assert (side.intended, side.intended_from) == ("happy", "sidecar")
    assert side.face_box == (1, 2, 7, 8) and pairs["anna__oddbox.png"].face_box is None  # malformed: ignored
    assert pairs["anna__oddbox.png"].target_from == "csv"  # a sidecar without targets falls back to the CSV
    reasons = {u["path"].split("/")[-1]: u["reason"] for u in result.unpaired}
    assert "2 ambiguous" in reasons["twin__happy.png"]
    assert "no source image named 'ghost'" in reasons["ghost.png"]
    assert "unreadable sidecar" in reasons["broken.png"]
    assert "AU99" in reasons["badau.png"]
    assert [p.split("/")[-1] for p in result.unused_refs] == ["twin.jpg", "twin.png", "unused.png"]


def test_annotation_csv_errors_are_named(tmp_path):
    (tmp_path / "dup.csv").write_text("image_path,AU12\na/x.png,0.1\nb/x.jpg,0.2\n")
    with pytest.raises(ValueError, match="more than once: x"):
        read_annotations(tmp_path / "dup.csv")
    (tmp_path / "nocol.csv").write_text("path,AU12\nx.png,0.1\n")
    with pytest.raises(ValueError, match="image_path"):
        read_annotations(tmp_path / "nocol.csv")


def test_missing_folders_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pair_images(tmp_path / "none")
    (tmp_path / "gens").mkdir()
    with pytest.raises(FileNotFoundError, match="reference folder"):
        pair_images(tmp_path / "gens", tmp_path / "none")
