"""The slider bookkeeping the Edit tab relies on: a move edits exactly the AU that moved, never a neighbour."""
from __future__ import annotations

from aufx.au import AUVector, au_codes, catalogue
from aufx.ui import au_controls


def test_one_linked_slider_per_au_and_a_side_pair_per_bilateral_au():
    keys = au_controls.slider_keys()
    assert [k for k in keys if k.startswith("AU")] == list(au_codes())
    bilateral = [a for a in catalogue() if a.bilateral]
    assert len(keys) == len(catalogue()) + 2 * len(bilateral)
    spec = next(s for s in au_controls.slider_specs() if s.key == "AU12")
    assert spec.label == "AU12 Lip Corner Puller" and spec.info.startswith("zygomaticus major. Pulls the lip corners")
    assert set(au_controls.region_specs()) == {"brows", "eyes", "cheeks_nose", "mouth", "jaw"}
    assert not au_controls.region_has_sides("jaw")  # AU17, AU26, AU27 are midline


def test_untouched_sliders_do_not_edit_asymmetric_faces():
    measured = AUVector({"L12": 0.803, "R12": 0.671, "AU25": 0.2})
    shown = au_controls.slider_values(measured)
    assert shown["AU12"] == 0.74 and shown["L12"] == 0.8 and shown["R12"] == 0.67
    assert au_controls.moved(shown, shown) == {}  # the page sends back what it shows: nothing moved
    assert au_controls.moved({**shown, "AU04": 0.3}, shown) == {"AU04": 0.3}
    target = measured.updated(au_controls.moved({**shown, "AU04": 0.3}, shown))
    assert target["L12"] == 0.803 and target["R12"] == 0.671  # the smile keeps its per-side values


def test_linked_and_side_moves():
    shown = au_controls.slider_values(AUVector())
    linked = AUVector().updated(au_controls.moved({**shown, "AU12": 0.5}, shown))
    assert linked["L12"] == linked["R12"] == 0.5
    one_side = AUVector().updated(au_controls.moved({**shown, "R14": 0.2}, shown))
    assert one_side["R14"] == 0.2 and one_side["L14"] == 0.0
    assert au_controls.moved({**shown, "AU12": None, "XX": 0.3}, shown) == {}  # unknown keys and gaps are ignored
