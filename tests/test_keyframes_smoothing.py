"""AU keyframes -> per-frame AU vectors, and One-Euro smoothing of AU and landmark tracks."""
import json

import numpy as np
import pytest

from aufx.au import channels
from aufx.io.keyframes import KeyframeError, keyframes_to_track, read_keyframes
from aufx.io.smoothing import OneEuroConfig, OneEuroFilter, smooth_track
from aufx.io.tracks import AUTrack

SMILE_KEYFRAMES = {"fps": 10, "keyframes": [{"t": 0.0, "aus": {"AU12": 0.0}},
                                          {"t": 1.0, "aus": {"AU12": 0.8, "R14": 0.2}}]}


def test_linear_keyframes_from_file(tmp_path):
    path = tmp_path / "smile.json"
    path.write_text(json.dumps(SMILE_KEYFRAMES))
    track = read_keyframes(path)
    assert len(track) == 11 and track.fps == 10
    np.testing.assert_allclose(track.times, np.arange(11) / 10)
    np.testing.assert_allclose(track.column("L12"), np.linspace(0, 0.8, 11), atol=1e-12)
    vectors = track.vectors()
    assert vectors[5]["L12"] == vectors[5]["R12"] == pytest.approx(0.4)
    assert vectors[5]["R14"] == pytest.approx(0.1) and vectors[5]["L14"] == 0.0
    assert vectors[10].compact() == {"AU12": 0.8, "R14": 0.2}


def test_smoothstep_easing_and_override():
    data = dict(SMILE_KEYFRAMES, fps=4, easing="smoothstep")
    eased = keyframes_to_track(data).column("AU12")
    np.testing.assert_allclose(eased, 0.8 * np.array([0, 0.15625, 0.5, 0.84375, 1]))
    np.testing.assert_allclose(keyframes_to_track(data, easing="linear").column("AU12"), [0, 0.2, 0.4, 0.6, 0.8])


def test_hold_before_first_key_text_form_and_missing_aus_are_zero():
    data = {"fps": 2, "keyframes": [{"t": 1.0, "aus": "AU04:0.6,AU12:0.5"},
                                    {"t": 2.0, "aus": "AU12:1"},
                                    {"t": 2.5, "aus": {}}]}
    track = keyframes_to_track(data)
    np.testing.assert_allclose(track.times, [0, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(track.column("AU04"), [0.6, 0.6, 0.6, 0.3, 0.0, 0.0])
    np.testing.assert_allclose(track.column("AU12"), [0.5, 0.5, 0.5, 0.75, 1.0, 0.0])


def test_single_keyframe_is_one_frame():
    track = keyframes_to_track({"fps": 30, "keyframes": [{"t": 0, "aus": {"L43": 1.0}}]})
    assert len(track) == 1 and track.vector(0).compact() == {"L43": 1.0}


@pytest.mark.parametrize("data, expected", [
    ({"keyframes": [{"t": 0, "aus": {}}]}, r"'fps' must be a positive number, got None"),
    ({"fps": 0, "keyframes": [{"t": 0, "aus": {}}]}, r"'fps' must be a positive number, got 0"),
    ({"fps": 30, "keyframes": []}, r"'keyframes' must be a non-empty list"),
    ({"fps": 30, "keyframes": [{"t": 0, "aus": {}}, {"t": 0.5, "aus": {"AU99": 0.5}}]},
     r"keyframe 1 \(t=0.5\): unknown AU 'AU99'"),
    ({"fps": 30, "keyframes": [{"t": 0, "aus": {"AU12": 1.5}}]}, r"keyframe 0 \(t=0\): .*\[0, 1\].*1.5"),
    ({"fps": 30, "keyframes": [{"t": 1, "aus": {}}, {"t": 0.5, "aus": {}}]},
     r"keyframe 1: t=0.5 does not come after t=1.0"),
    ({"fps": 30, "keyframes": [{"aus": {}}]}, r"keyframe 0: expected"),
    ({"fps": 30, "keyframes": [{"t": -1, "aus": {}}]}, r"keyframe 0: 't' must be a number of seconds >= 0"),
    ({"fps": 30, "easing": "bounce", "keyframes": [{"t": 0, "aus": {}}]}, r"unknown easing 'bounce'"),
])
def test_keyframe_errors(data, expected):
    with pytest.raises(KeyframeError, match=expected):
        keyframes_to_track(data, source="anim.json")


def test_unreadable_keyframe_file(tmp_path):
    path = tmp_path / "anim.json"
    path.write_text('{"fps": 30, "keyframes": [')
    with pytest.raises(KeyframeError, match="anim.json: not a readable JSON file"):
        read_keyframes(path)


# One-Euro ---------------------------------------------------------------------------------------------------------

def test_one_euro_removes_jitter_at_rest():
    rng = np.random.default_rng(1)
    t = np.arange(300) / 30
    noisy = 0.5 + rng.normal(0, 0.03, 300)
    smooth = smooth_track(noisy, t, OneEuroConfig(min_cutoff=1.0, beta=1.0))
    assert smooth[0] == noisy[0]  # the first sample passes through
    assert np.std(smooth[60:]) < np.std(noisy[60:]) / 3
    assert np.mean(smooth[60:]) == pytest.approx(0.5, abs=0.01)


def test_one_euro_lags_less_than_a_fixed_low_pass_on_fast_motion():
    t = np.arange(60) / 60
    onset = np.clip((t - 0.2) / 0.15, 0, 1)  # a 150 ms rise, like a startle
    fixed = smooth_track(onset, t, OneEuroConfig(min_cutoff=1.0, beta=0.0))
    adaptive = smooth_track(onset, t, OneEuroConfig(min_cutoff=1.0, beta=5.0))
    end_of_rise = int(0.35 * 60)
    assert onset[end_of_rise] - adaptive[end_of_rise] < 0.5 * (onset[end_of_rise] - fixed[end_of_rise])
    assert np.max(np.abs(adaptive - onset)) < np.max(np.abs(fixed - onset))


def test_one_euro_on_landmark_arrays_frame_by_frame():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 500, (478, 3))
    filt = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=0.01))
    frames = [base + rng.normal(0, 2.0, base.shape) for _ in range(90)]
    out = [filt(f, i / 30) for i, f in enumerate(frames)]
    assert out[-1].shape == (478, 3)
    assert np.abs(out[-1] - base).mean() < np.abs(frames[-1] - base).mean() / 2
    with pytest.raises(ValueError, match="increasing times"):
        filt(base, 1.0)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        filt(np.zeros(10), 10.0)
    filt.reset()
    np.testing.assert_array_equal(filt(np.zeros(10), 10.0), np.zeros(10))


def test_one_euro_config_is_checked():
    with pytest.raises(ValueError, match="min_cutoff > 0"):
        OneEuroConfig(min_cutoff=0)


def test_au_track_smoothing_keeps_range_and_times():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1, (40, 1)) * np.ones((1, len(channels())))
    track = AUTrack(np.arange(40) / 30, values, fps=30)
    smooth = track.smoothed()
    assert smooth.fps == 30 and np.array_equal(smooth.times, track.times)
    assert 0 <= smooth.values.min() and smooth.values.max() <= 1
    assert np.std(np.diff(smooth.values[:, 0])) < np.std(np.diff(track.values[:, 0]))
