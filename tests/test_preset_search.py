"""eval.preset_search: prototype strengths chosen by FER2013 under dlib's identity bound, cross-validated by person."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from aufx.model.presets import emotion_presets
from eval.preset_search import SearchConfig, main, run


def test_a_search_keeps_the_core_and_holds_out_whole_people(tmp_path, astronaut, grace):
    """Three photos of two people (the astronaut, her mirror image, Grace Hopper): the astronaut's two photos are
    one person by dlib and stay in one fold; every prototype tried uses only the AUs the preset's sources name, its
    core AUs (AU06 and AU12 for happy) never below core_min; the chosen prototype reads at least as well as the
    shipped one on the faces that chose it, and each held-out face is judged once."""
    faces = tmp_path / "faces"
    faces.mkdir()
    for name, rgb in (("astronaut", astronaut), ("astronaut_mirror", astronaut[:, ::-1]), ("grace", grace)):
        cv2.imwrite(str(faces / f"{name}.png"), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    cfg = SearchConfig(faces=faces, out=tmp_path / "out", presets=("happy",), grid=(0.0, 1.0), sweeps=1)
    result = run(cfg, progress=lambda *_: None)
    assert sorted(map(sorted, result["folds"])) == [["astronaut", "astronaut_mirror"], ["grace"]]
    happy = emotion_presets()["happy"]
    trials = pd.read_csv(cfg.out / "trials.csv")
    assert len(trials) > 6 and set(trials.fold) == {"fold0", "fold1", "all"}
    for aus in map(json.loads, trials.aus):
        assert set(aus) <= set(happy["admissible"])
        assert all(aus.get(au, 0) >= cfg.core_min for au in happy["core"])
    got = result["presets"]["happy"]
    assert got["chosen"]["logp"] >= got["shipped"]["logp"]
    assert got["cross_validated"]["n"] == 3
    written = json.loads((cfg.out / "search.json").read_text())
    assert written["presets"]["happy"]["chosen"]["aus"] == got["chosen"]["aus"]


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    for argv, words in ((["--faces", str(tmp_path), "--presets", "neutral"], "FER2013 judges"),
                        (["--faces", str(tmp_path / "none")], "not a folder")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and words in capsys.readouterr().err
