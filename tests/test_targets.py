"""One preset meaning everywhere: a preset replaces the whole expression; --only-named keeps the old behaviour."""
import pytest

from aufx.au import AUVector
from aufx.request import EditRequest
from aufx.model.presets import preset_vector
from aufx.study.conditions import target_for
from aufx.study.stimulus_config import Condition

SMILING = AUVector({"L12": 0.7, "R12": 0.7, "L06": 0.5, "R06": 0.5, "AU25": 0.4})


def test_preset_replaces_the_whole_expression():
    t = EditRequest(preset="sad", intensity=1.0).target(SMILING)
    assert t == preset_vector("sad", 1.0)
    assert t["L12"] == 0 and t["AU25"] == 0 and t["L15"] > 0


def test_au_text_applies_on_top_of_the_preset():
    t = EditRequest(au_text="AU26:0.3", preset="sad", intensity=0.5).target(SMILING)
    assert t["AU26"] == pytest.approx(0.3)
    assert t["L01"] == pytest.approx(preset_vector("sad", 0.5)["L01"])


def test_only_named_keeps_the_rest_of_the_face():
    t = EditRequest(preset="sad", intensity=1.0, only_named=True).target(SMILING)
    assert t["L12"] == pytest.approx(0.7) and t["AU25"] == pytest.approx(0.4)
    assert t["L15"] == pytest.approx(preset_vector("sad", 1.0)["L15"])


def test_without_preset_only_named_aus_change():
    t = EditRequest(au_text="AU04:0.6").target(SMILING)
    assert t["L12"] == pytest.approx(0.7) and t["L04"] == pytest.approx(0.6)


def test_stimulus_condition_with_measured_base_reaches_the_preset():
    cond = Condition("sad", preset="sad")
    assert target_for(SMILING, cond, 1.0, "measured") == preset_vector("sad", 1.0)
    half = target_for(SMILING, cond, 0.5, "measured")
    assert half["L12"] == pytest.approx(0.35)  # halfway from the photo's smile to none
    kept = target_for(SMILING, Condition("sad", preset="sad", only_named=True), 1.0, "measured")
    assert kept["L12"] == pytest.approx(0.7)
