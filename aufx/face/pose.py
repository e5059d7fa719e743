"""Head pose as the similarity transform that maps the canonical face onto the detected landmarks.

The AU deformations are defined on the canonical (pose-free) face; this transform carries them into the photo, so a
tilted or turned head deforms the way the real face would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from aufx.face.topology import topology


@dataclass(frozen=True)
class Pose:
    """image = scale * rotation @ canonical + translation; canonical is in IPD units, image in px (z like x)."""

    scale: float  # pixels per IPD
    rotation: np.ndarray  # (3, 3), canonical -> image axes
    translation: np.ndarray  # (3,) pixels

    def to_image(self, canonical: np.ndarray) -> np.ndarray:
        """Points (n, 3) IPD units, canonical frame -> (n, 3) px in the photo."""
        return self.scale * canonical @ self.rotation.T + self.translation

    def vectors_to_image(self, canonical_vectors: np.ndarray) -> np.ndarray:
        """Motions (n, 3) IPD units -> (n, 3) px: rotated and scaled, not translated (an AU's displacement)."""
        return self.scale * canonical_vectors @ self.rotation.T

    def to_canonical(self, image_points: np.ndarray) -> np.ndarray:
        """Points (n, 3) px -> (n, 3) IPD units with the head pose removed, where the AU basis is defined."""
        return (image_points - self.translation) @ self.rotation / self.scale

    def image_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(2,) unit image-plane directions of the face's "right" (canonical +x) and "down" (canonical +y): the
        photo's axes of a tilted head, for anything laid out along the face rather than the image."""
        r = self.rotation[:2]
        return r[:, 0] / max(np.linalg.norm(r[:, 0]), 1e-12), r[:, 1] / max(np.linalg.norm(r[:, 1]), 1e-12)

    def euler_degrees(self) -> dict[str, float]:
        """Pitch (nod), yaw (turn), roll (in-plane tilt) in degrees; 0 = frontal upright."""
        pitch, yaw, roll = Rotation.from_matrix(self.rotation).as_euler("xyz", degrees=True)
        return {"pitch": round(float(pitch), 2), "yaw": round(float(yaw), 2), "roll": round(float(roll), 2)}


def fit_pose(landmarks: np.ndarray) -> Pose:
    """Pose of landmarks (478, 3) px: Umeyama (1991) least-squares similarity from the canonical face, fitted on the
    landmarks that expressions barely move (forehead, nose, contour), so a smile does not read as a head turn."""
    topo = topology()
    idx = np.asarray(topo.groups["pose_anchors"])
    src = topo.canonical[idx]
    dst = landmarks[idx]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(idx)
    u, d, vt = np.linalg.svd(cov)
    s_fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s_fix[2, 2] = -1
    rot = u @ s_fix @ vt
    scale = float(np.trace(np.diag(d) @ s_fix) / (xs ** 2).sum() * len(idx))
    return Pose(scale, rot, mu_d - scale * rot @ mu_s)
