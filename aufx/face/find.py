"""Find every face of at least ``min_face_px`` anywhere in a photo, at any resolution up to 8k and beyond.

Why a search: MediaPipe's face mesh finds faces with its short-range detector on a 128 px copy of the whole image,
so it misses faces under ~12 % of the image's long side (a 93 px face in a 900 px group photo). Here:

1. the mesh on a bounded copy (fast path; for images up to ~640 px it already sees every face >= 80 px);
2. otherwise MediaPipe's full-range detector (192 px input, finds faces down to ~6 % of its input; shipped in the
   same wheel) over a pyramid of overlapping square tiles, from the whole image down to tiles of
   ``min_face_px / detector_fraction`` px;
3. the mesh on a crop around each new detection, and around faces step 1 saw only small or on a shrunk copy, its
   landmarks mapped back to full-resolution pixels. The crop is snapped to a grid and iterated to a fixed point, so
   re-measuring the face after an edit (faces_near) sees it through the same crop: MediaPipe's landmarks depend on
   the framing, and a different one would read as an AU change;
4. a face counts if MediaPipe's short-range detector, shown its mesh crop, scores it as one (the mesh's own
   detector takes a colour wheel for a face);
5. a photo turned on its side or upside down (upright_turns, judged on its largest face; a photo without faces is
   searched turned too) is searched again turned upright, its landmarks mapped back to the photo's own pixels.

Only tiles and crops are resized, never the whole image at full size: a 100-megapixel photo costs no extra copy
(a turned one is copied once, upright).
"""
from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from aufx.face.detect import shared_detector
from aufx.face.topology import topology


@dataclass(frozen=True)
class FindConfig:
    """How far the search goes: face sizes in px, MediaPipe's measured limits as fractions of its input side."""

    min_face_px: int = 80  # faces this wide are found anywhere in images up to max_grid * tile (8k and more)
    detector_fraction: float = 0.075  # full-range detector: finds faces >= ~6 % of its input side (measured), margin
    mesh_fraction: float = 0.125  # the mesh's own detector: faces >= ~12 % of the long side (measured on 768-900 px)
    max_grid: int = 8  # at most this many finest tiles along the long side (bounds the work on huge images)
    detector_input: int = 1100  # larger tiles are shrunk to this first (INTER_AREA); MediaPipe resizes to 192 itself
    crop_factor: float = 2.4  # mesh crop side / detected box side: the whole head with margin, as the mesh expects
    crop_side: int = 640  # crops are resized to at most this: the face ~270 px, above the landmark model's 256
    min_score: float = 0.5
    face_score: float = 0.65  # a face counts if the short-range detector scores its mesh crop this high: real faces
    # 0.75-0.97 (19 development and sample photos, their 35 faces, the cameraman), while the mesh's own detector
    # took scikit-image's colour wheel (0.58) and its coffee cup turned three quarters (0.54) for faces
    same_face_iou: float = 0.3  # detections overlapping more than this are one face
    upright_side: int = 256  # a face is judged upright or upside down on its mesh crop this large (the short-range
    upright_margin: float = 0.1  # detector's input is 128 px), upside down if turned it scores this much more...
    upright_min_score: float = 0.2  # ...detections weaker than this counting as none; a face scoring
    upright_sure: float = 0.85  # this is upright (upright crops score 0.85-0.97, upside-down ones 0.00-0.78)
    upright_tilt_deg: float = 45.0  # a mesh whose eye line is this near level is taken as upright...
    sideways_tilt_deg: float = 60.0  # ...unless the detector's eyes tilt beyond this (upright faces: within 35 deg)
    turned_search_px: int = 25_000_000  # a photo without faces is searched turned up to this size (a 12-MP phone
    # photo without its orientation tag; a 100-MP scan without faces is not copied three more times)


class _Detector:
    """One of MediaPipe's face detectors (legacy solutions API; ``model`` 0: short-range, 1: full-range), serialised
    by a lock like the mesh."""

    def __init__(self, model: int, min_score: float):
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(model_selection=model,
                                                              min_detection_confidence=min_score)
        self._lock = threading.Lock()

    def scored(self, rgb: np.ndarray) -> list[tuple[float, tuple[float, float, float, float], np.ndarray]]:
        """(score, (x0, y0, x1, y1) float px, eyes (2, 2) px: the subject's right then left) of each face in an
        (h, w, 3) uint8 ``rgb``."""
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._det.process(np.ascontiguousarray(rgb))
        out = []
        for d in result.detections or []:
            b, k = d.location_data.relative_bounding_box, d.location_data.relative_keypoints
            box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
            out.append((float(d.score[0]), box, np.array([[k[i].x * w, k[i].y * h] for i in (0, 1)])))
        return out

    def boxes(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """(x0, y0, x1, y1) float px of each face in an (h, w, 3) uint8 ``rgb``."""
        return [box for _, box, _ in self.scored(rgb)]


_detectors: dict[tuple[int, float], _Detector] = {}
_detectors_lock = threading.Lock()


def _detector(cfg: FindConfig, model: int = 1) -> _Detector:
    """The shared full-range (``model`` 1) or short-range (0) detector."""
    key = (model, cfg.min_score if model == 1 else cfg.upright_min_score)
    with _detectors_lock:
        if key not in _detectors:
            _detectors[key] = _Detector(*key)
        return _detectors[key]


def upright_turns(rgb: np.ndarray, landmarks: np.ndarray, cfg: FindConfig = FindConfig()) -> int:
    """Quarter turns (``np.rot90``'s k, counter-clockwise) that bring the face whose mesh is ``landmarks`` (478, 3)
    px in an (H, W, 3) photo upright: 0 unless the photo is turned (a phone photo without its orientation tag).
    MediaPipe's mesh finds faces lying on their side or upside down but fits them a few pixels off or wrongly (the
    astronaut upside down: her eyes taken for a mouth, and a "happy" edit drew teeth into them). Upside down: its
    short-range detector, shown the face's mesh crop, scores it under ``upright_sure`` and the crop turned a half at
    least ``upright_margin`` higher (upright faces score 0.85-0.97, upside down 0.00-0.78). On its side: the mesh's
    own eye line says so, unless it lies within ``upright_tilt_deg`` of level while the detector's lies beyond
    ``sideways_tilt_deg`` (the detector scores faces on their side as high as upright ones and places their eyes
    within 35 deg; a mesh fitted wrongly to a face on its side can lie near level)."""
    crop = _mesh_crop(rgb, landmarks, cfg)
    if crop is None:
        return 0
    det = _detector(cfg, model=0)
    best = lambda found: max((score for score, _, _ in found), default=0.0)  # noqa: E731
    as_is = det.scored(crop)
    if best(as_is) < cfg.upright_sure and best(det.scored(np.rot90(crop, 2))) >= best(as_is) + cfg.upright_margin:
        return 2
    eye_r, eye_l = topology().groups["eye_outer_corners"]  # the subject's right eye (image left, upright), left
    right = landmarks[eye_l, :2] - landmarks[eye_r, :2]  # the face's right, in image px
    if as_is and abs(_tilt(right)) < cfg.upright_tilt_deg:
        eyes = max(as_is, key=lambda d: d[0])[2]
        if abs(_tilt(eyes[1] - eyes[0])) > cfg.sideways_tilt_deg:
            right = eyes[1] - eyes[0]
    down = np.array([-right[1], right[0]])  # the face's down: how far down it points after each turn
    return int(np.argmax([down[1], -down[0], -down[1], down[0]]))


def _mesh_crop(rgb: np.ndarray, landmarks: np.ndarray, cfg: FindConfig) -> np.ndarray | None:
    """The crop (at most ``upright_side`` px) around the face whose mesh is ``landmarks`` (478, 3) px in an
    (H, W, 3) photo, as the mesh is fitted on it; None if it is a sliver."""
    x0, y0, x1, y1 = crop_rect(_box(landmarks), *rgb.shape[:2], cfg)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return _resized(rgb, x0, y0, x1, y1, cfg.upright_side)[0]


def _face_score(rgb: np.ndarray, landmarks: np.ndarray, cfg: FindConfig) -> float:
    """The short-range detector's best score on the mesh crop of ``landmarks`` (478, 3) px in ``rgb``."""
    crop = _mesh_crop(rgb, landmarks, cfg)
    return max((score for score, _, _ in _detector(cfg, model=0).scored(crop)), default=0.0) if crop is not None \
        else 0.0


def _tilt(right: np.ndarray) -> float:
    """Degrees an eye line (2,) image px (the subject's right eye to the left one) turns from level."""
    return math.degrees(math.atan2(right[1], right[0]))


def _upright(rgb: np.ndarray, k: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k))


def _turn(points: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Points (n, >=2) px of an (H, W) image, in the image ``np.rot90(image, k)`` (x, y only; z stays). Pixel
    coordinates as MediaPipe gives them: 0 at the image's edge, pixel i spans [i, i + 1)."""
    h, w = shape
    out = np.array(points, dtype=np.float64, copy=True)
    x, y = out[:, 0].copy(), out[:, 1].copy()
    if k % 4 == 1:
        out[:, 0], out[:, 1] = y, w - x
    elif k % 4 == 2:
        out[:, 0], out[:, 1] = w - x, h - y
    elif k % 4 == 3:
        out[:, 0], out[:, 1] = h - y, x
    return out


def _turned_box(box, k: int, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box (x0, y0, x1, y1) px of an (H, W) image, in the image ``np.rot90(image, k)``."""
    corners = _turn(np.array([[box[0], box[1]], [box[2], box[3]]], np.float64), k, shape)
    return (*corners.min(0), *corners.max(0))


def finest_tile(h: int, w: int, cfg: FindConfig = FindConfig()) -> int:
    """Side (px) of the smallest tiles searched in an (h, w) image."""
    return int(min(max(h, w), max(cfg.min_face_px / cfg.detector_fraction, max(h, w) / cfg.max_grid)))


def smallest_face_px(h: int, w: int, cfg: FindConfig = FindConfig()) -> int:
    """The width (px) above which a face is found in an (h, w) image: the limit the 'no face' message states."""
    return max(int(math.ceil(cfg.detector_fraction * finest_tile(h, w, cfg))), 1)


def _tiles(h: int, w: int, cfg: FindConfig):
    """(x0, y0, side) of every square tile: whole image, then halving with 50 % overlap down to the finest."""
    side, finest = max(h, w), finest_tile(h, w, cfg)
    yield 0, 0, side
    while side > finest:
        side = max(finest, side // 2)
        step = side // 2
        for y in _starts(h, side, step):
            for x in _starts(w, side, step):
                yield x, y, side


def _starts(length: int, side: int, step: int) -> list[int]:
    if length <= side:
        return [0]
    starts = list(range(0, length - side, step))
    return starts + [length - side]


def _resized(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int, max_side: int) -> tuple[np.ndarray, float]:
    """The region, downscaled so its long side is at most ``max_side``; and the scale applied."""
    region = rgb[y0:y1, x0:x1]
    f = min(1.0, max_side / max(region.shape[:2]))
    if f < 1.0:
        region = cv2.resize(region, (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f))),
                        interpolation=cv2.INTER_AREA)
    return region, f


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    (x0, y0), (x1, y1) = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1)


def detect_boxes(rgb: np.ndarray, cfg: FindConfig = FindConfig()) -> list[tuple[float, float, float, float]]:
    """Face boxes (x0, y0, x1, y1) in full-resolution pixels from the tiled full-range search, duplicates merged."""
    h, w = rgb.shape[:2]
    det, boxes = _detector(cfg), []
    for x0, y0, side in _tiles(h, w, cfg):
        tile, f = _resized(rgb, x0, y0, min(w, x0 + side), min(h, y0 + side), cfg.detector_input)
        for bx0, by0, bx1, by1 in det.boxes(tile):
            box = (x0 + bx0 / f, y0 + by0 / f, x0 + bx1 / f, y0 + by1 / f)
            if not any(_iou(box, b) > cfg.same_face_iou for b in boxes):
                boxes.append(box)
    return boxes


def crop_rect(box, h: int, w: int, cfg: FindConfig = FindConfig()) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) the mesh sees around a face box, clipped to the (h, w) image.

    Snapped to a coarse grid (side to steps of 2^(1/4), centre to 1/8 of the side): MediaPipe's landmarks depend on
    the crop, and a face re-measured after an edit (its box a few pixels off) must be seen through the same crop."""
    side = max(box[2] - box[0], box[3] - box[1], 1.0) * cfg.crop_factor
    side = 2 ** (math.ceil(4 * math.log2(side)) / 4)
    step = side / 8
    cx = round((box[0] + box[2]) / 2 / step) * step
    cy = round((box[1] + box[3]) / 2 / step) * step
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    return x0, y0, min(w, int(math.ceil(cx + side / 2))), min(h, int(math.ceil(cy + side / 2)))


def mesh_near(rgb: np.ndarray, box, cfg: FindConfig = FindConfig()) -> np.ndarray | None:
    """The mesh (478, 3) of the face in ``box`` (x0, y0, x1, y1), from a crop around it (crop_rect); None if the mesh
    finds none there. Landmarks are mapped back to full-resolution pixels (z scaled like x, as detect() gives them).
    """
    x0, y0, x1, y1 = crop_rect(box, *rgb.shape[:2], cfg)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop, f = _resized(rgb, x0, y0, x1, y1, cfg.crop_side)
    found = shared_detector().detect(crop)
    if not found:
        return None
    centre = np.array([((box[0] + box[2]) / 2 - x0) * f, ((box[1] + box[3]) / 2 - y0) * f])
    best = min(found, key=lambda lm: float(np.linalg.norm(lm[:, :2].mean(0) - centre)))
    out = best / f
    out[:, 0] += x0
    out[:, 1] += y0
    return out


def _small(h: int, w: int, cfg: FindConfig) -> bool:
    """The mesh alone sees every face of min_face_px in an image this small."""
    return cfg.mesh_fraction * max(h, w) <= cfg.min_face_px


def _whole(h: int, w: int, box, cfg: FindConfig) -> bool:
    """Whether a face is meshed on the whole image, as the mesh alone sees it, rather than on a crop around it: the
    image is not shrunk for the mesh and the face is large enough for the mesh's own detector."""
    side = max(box[2] - box[0], box[3] - box[1])
    return max(h, w) <= shared_detector().config.max_side and (
        _small(h, w, cfg) or side >= cfg.mesh_fraction * max(h, w))


def faces_near(rgb: np.ndarray, box, cfg: FindConfig = FindConfig()) -> list[np.ndarray]:
    """Landmarks ((478, 3) px each) of the face in ``box`` (x0, y0, x1, y1 px), e.g. an edited face re-measured,
    seen the way find_faces saw it: turned upright, then the whole image (as before, for portraits), or the same crop
    around it."""
    def search(image: np.ndarray, k: int) -> list[np.ndarray]:
        return _faces_near(image, _turned_box(box, k, rgb.shape[:2]), cfg)

    def judged(faces: list[np.ndarray], k: int) -> np.ndarray | None:  # the face found where ``box`` is
        where = _turned_box(box, k, rgb.shape[:2])
        best = max(faces, key=lambda lm: _iou(_box(lm), where), default=None)
        return best if best is not None and _iou(_box(best), where) > cfg.same_face_iou else None

    return _upright_search(rgb, search, judged, cfg)


def _faces_near(rgb: np.ndarray, box, cfg: FindConfig) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    if _whole(h, w, box, cfg):
        found = shared_detector().detect(rgb)
        if any(_iou(_box(lm), box) > cfg.same_face_iou for lm in found):
            return found
    _release_freed_memory()  # after an edit of a huge image, before MediaPipe sizes its buffers for the crop
    found = mesh_near(rgb, box, cfg)
    return [found] if found is not None else []


def find_faces(rgb: np.ndarray, cfg: FindConfig = FindConfig()) -> list[np.ndarray]:
    """Landmarks (478, 3) float64 px (x right, y down, z scaled like x) of every face at least
    ``smallest_face_px`` wide in an (H, W, 3) uint8 image, at full resolution whatever the image's size; a turned
    photo's faces are found upright (upright_turns, judged on its largest face) and their landmarks given in the
    photo's own pixels."""
    def judged(faces: list[np.ndarray], k: int) -> np.ndarray | None:  # the largest face
        return max(faces, key=lambda lm: float(np.prod(np.ptp(lm[:, :2], axis=0))), default=None)

    def counted(image: np.ndarray, k: int) -> list[np.ndarray]:  # the faces the detector scores as faces
        return [lm for lm in _find_faces(image, cfg) if _face_score(image, lm, cfg) >= cfg.face_score]

    return _upright_search(rgb, counted, judged, cfg)


def _upright_search(rgb: np.ndarray, search, judged, cfg: FindConfig) -> list[np.ndarray]:
    """``search(image, k)``'s faces in ``rgb`` turned upright, in ``rgb``'s own pixels: searched as it is, or (none
    found there, in a photo of up to ``turned_search_px``) upside down and on either side, taking the turn whose
    face ``judged(faces, k)`` the short-range detector scores highest; then turned as that face asks
    (upright_turns), at most twice, as long as the turned photo shows a face."""
    k, faces, image = 0, search(rgb, 0), rgb
    if judged(faces, 0) is None:
        if rgb.shape[0] * rgb.shape[1] > cfg.turned_search_px:
            return faces
        found = []  # (score, k, faces, image) of each turn that shows a face
        for turn in (2, 1, 3):
            turned = _upright(rgb, turn)
            again = search(turned, turn)
            face = judged(again, turn)
            if face is not None:
                found.append((_face_score(turned, face, cfg), turn, again, turned))
        if not found:
            return faces
        _, k, faces, image = max(found, key=lambda f: f[0])
    for _ in range(2):
        more = upright_turns(image, judged(faces, k), cfg)
        if not more:
            break
        turn = (k + more) % 4
        turned = _upright(rgb, turn)
        again = search(turned, turn)
        if judged(again, turn) is None:
            break
        k, faces, image = turn, again, turned
    h, w = rgb.shape[:2]
    return [_turn(lm, -k, (w, h) if k % 2 else (h, w)) for lm in faces] if k else faces


def _find_faces(rgb: np.ndarray, cfg: FindConfig) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    faces = shared_detector().detect(rgb)
    if faces and _small(h, w, cfg):
        return faces  # the mesh alone already sees every face this image can hold
    known = [_box(lm) for lm in faces]
    for box in detect_boxes(rgb, cfg):
        if any(_iou(box, k) > cfg.same_face_iou or _inside(box, k) for k in known):
            continue
        lm = mesh_near(rgb, box, cfg)
        if lm is not None and not any(_iou(_box(lm), k) > cfg.same_face_iou for k in known):
            faces.append(lm)
            known.append(_box(lm))
    # Faces the whole-image mesh does not see well (on a shrunk copy, or small) are meshed on a full-resolution crop,
    # the one faces_near will look through when the edited face is re-measured.
    faces = [lm if _whole(h, w, _box(lm), cfg) else _refined(rgb, lm, cfg) for lm in faces]
    _release_freed_memory()  # the search's tiles and crops, before the edit needs its full-size copy
    return faces


def _refined(rgb: np.ndarray, landmarks: np.ndarray, cfg: FindConfig, rounds: int = 3) -> np.ndarray:
    """Re-meshed on a full-resolution crop until the crop its own box asks for is the one it was made from."""
    h, w = rgb.shape[:2]
    for _ in range(rounds):
        rect = crop_rect(_box(landmarks), h, w, cfg)
        found = mesh_near(rgb, _box(landmarks), cfg)
        if found is None:
            return landmarks
        landmarks = found
        if crop_rect(_box(landmarks), h, w, cfg) == rect:
            break
    return landmarks


def _inside(box, outer) -> bool:
    """The centre of ``box`` lies in ``outer`` (a detector box is smaller than the mesh's, which spans the head)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _release_freed_memory() -> None:
    """Hand memory freed by the edit's temporaries back to the OS (glibc keeps it otherwise: on a 100-MP photo
    ~200 MB that would add to the peak). Elsewhere a no-op."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except OSError:
            _trim = False
    if _trim:
        _trim(0)


_trim = None
