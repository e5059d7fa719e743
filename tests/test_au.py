"""AU catalogue, vectors, the text form and the presets file."""
import json

import pytest

from aufx.au import AUError, AUVector, au_codes, catalogue, channels, parse_au_text
from aufx.model.presets import EMOTIONS, emotion_presets, load_user_preset, preset_vector, save_user_preset


def test_catalogue_has_openface_aus_and_preset_extras():
    codes = set(au_codes())
    openface = {"AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU17",
                "AU20", "AU23", "AU25", "AU26", "AU45"}
    assert openface <= codes and {"AU16", "AU24", "AU27", "AU43"} <= codes
    assert {a.code for a in catalogue() if a.openface} == openface
    assert "L12" in channels() and "R12" in channels() and "AU17" in channels() and "L17" not in channels()


def test_text_form_round_trip_and_sides():
    v = AUVector.from_text("AU04:0.6,AU12:0.7,R14:0.2")
    assert v["L04"] == v["R04"] == 0.6 and v["R14"] == 0.2 and v["L14"] == 0.0
    assert v.compact() == {"AU04": 0.6, "AU12": 0.7, "R14": 0.2}
    assert AUVector.from_text(v.to_text()) == v
    assert v.au("AU14") == pytest.approx(0.1)


@pytest.mark.parametrize("text, token", [("AU99:0.3", "AU99"), ("AU12:1.3", "AU12:1.3"), ("AU12:-0.1", "AU12:-0.1"),
                                         ("AU12", "AU12"), ("L17:0.2", "L17"), ("AU12:abc", "AU12:abc"),
                                         ("AU04:0.6,XX:0.2", "XX"), ("AU12:nan", "AU12:nan")])
def test_bad_tokens_are_named(text, token):
    with pytest.raises(AUError, match=token.replace("+", r"\+")):
        parse_au_text(text)


def test_presets_are_the_eight_affectnet_categories_with_sources():
    presets = emotion_presets()
    assert tuple(presets) == EMOTIONS
    assert all(p["source"] for p in presets.values())
    assert preset_vector("neutral") == AUVector()
    assert preset_vector("happy").compact() == {"AU06": 0.6, "AU12": 0.8, "AU25": 0.6, "AU26": 0.2}
    contempt = preset_vector("contempt")
    assert contempt["R12"] > 0 and contempt["L12"] == 0  # unilateral
    assert preset_vector("fear", include_optional=True)["L07"] > 0 == preset_vector("fear")["L07"]
    assert preset_vector("happy", 0.5).compact() == {"AU06": 0.3, "AU12": 0.4, "AU25": 0.3, "AU26": 0.1}


def test_user_preset_json_round_trip(tmp_path):
    v = AUVector.from_text("AU01:0.3,L12:0.5")
    path = save_user_preset(tmp_path / "p" / "mine.json", "mine", v)
    assert json.loads(path.read_text())["aus"] == {"AU01": 0.3, "L12": 0.5}
    assert load_user_preset(path) == ("mine", v)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AUError, match="bad.json"):
        load_user_preset(tmp_path / "bad.json")
