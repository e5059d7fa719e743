"""Read any photo a researcher has into 8-bit RGB, and write PNGs that carry their edit parameters.

Why here and not scattered: EXIF orientation, 16-bit, grayscale, palette and RGBA inputs, and decompression bombs all
need the same care at every entry point (CLI, app, batch tools).
"""
from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aufx.io.files import atomic_path

# Above this many pixels we refuse (a 100-megapixel photo is already larger than any camera a lab uses).
MAX_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # we refuse larger images ourselves, with a message; PIL would only warn
# Above this, 8-bit RGB/gray photos are decoded by OpenCV straight into the (H, W, 3) array: PIL holds 4 bytes per
# pixel and the conversion a second copy, 7 bytes per pixel at the peak against 3.
DIRECT_DECODE_PIXELS = 16_000_000
PNG_META_KEY = "aufx"


class ImageReadError(ValueError):
    """The file is not an image we can read; the message names the file."""


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to uint8 RGB, scaling 16-bit and float data instead of clipping them."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            hi = 1.0 if arr.max() <= 1.0 else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparent areas on white, as viewers show them, rather than exposing undefined colour.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_image(source: str | Path | bytes | np.ndarray | Image.Image, name: str | None = None) -> np.ndarray:
    """Load an image as an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    ``source`` may be a path, raw bytes, a PIL image or an array (gray, RGB, RGBA, uint8/uint16/float).
    """
    if isinstance(source, np.ndarray):
        return array_to_rgb8(source)
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "image")
    if isinstance(source, Image.Image):
        img = source
        data = None
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.exists():
                raise ImageReadError(f"{path}: no such file")
            if path.is_dir():
                raise ImageReadError(f"{path}: is a folder, not an image")
            data = path.read_bytes()
        else:
            data = bytes(source)
        if not data:
            raise ImageReadError(f"{label}: the file is empty")
        try:
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise ImageReadError(f"{label}: {img.width}x{img.height} is larger than the {MAX_PIXELS // 10**6}"
                                     " megapixel limit; downscale it first")
            if img.width * img.height > DIRECT_DECODE_PIXELS and img.mode in ("RGB", "L"):
                rgb = _decode_direct(data)
                if rgb is not None:
                    return rgb
            img.load()
        except ImageReadError:
            raise
        except Image.DecompressionBombError:
            raise ImageReadError(f"{label}: image is too large to decode safely "
                                 f"(limit {MAX_PIXELS // 10**6} megapixels)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{label}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    # 16-bit RGB PNG/TIFF decode to 8-bit RGB in PIL (high byte); 16-bit gray is scaled in _to_rgb8.
    rgb = _to_rgb8(ImageOps.exif_transpose(img))
    return np.require(rgb, requirements=["C_CONTIGUOUS", "WRITEABLE"])  # PIL's buffer is read-only: own a copy


def _decode_direct(data: bytes) -> np.ndarray | None:
    """OpenCV's decode straight to RGB (EXIF orientation applied, as exif_transpose does); None if OpenCV cannot read
    the format (PIL then decodes it)."""
    import cv2

    rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    return None if rgb is None else np.ascontiguousarray(rgb)


def _swap_channels(rgb: np.ndarray, rows: int = 512) -> None:
    """RGB <-> BGR in place, a strip at a time (OpenCV's in-place cvtColor copies its whole input first)."""
    import cv2

    for y in range(0, rgb.shape[0], rows):
        strip = rgb[y:y + rows]
        cv2.cvtColor(strip, cv2.COLOR_RGB2BGR, dst=strip)


def array_to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Normalise an in-memory array (what Gradio or OpenCV hand over) to uint8 RGB."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
        raise ImageReadError(f"expected an image array of shape (H, W[, 1|3|4]), got {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageReadError(f"image of {arr.shape[1]}x{arr.shape[0]} exceeds the {MAX_PIXELS // 10**6} MP limit")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    c = arr.shape[2]
    if c == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif c == 2:  # gray + alpha
        arr = _to_rgb8(Image.fromarray(arr, "LA"))
    elif c == 4:
        arr = _to_rgb8(Image.fromarray(arr, "RGBA"))
    return np.ascontiguousarray(arr)


def _itxt_chunk(key: str, text: str) -> bytes:
    """A PNG iTXt chunk (uncompressed UTF-8 text), as the PNG specification lays it out."""
    body = key.encode("latin-1") + b"\0\0\0" + b"\0" + b"\0" + text.encode("utf-8")
    return struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)


PNG_PARAMS = (16, 1)  # (cv2.IMWRITE_PNG_COMPRESSION, 1): fast, and photos compress little more at 9
IEND = b"\0\0\0\0IEND\xaeB`\x82"  # the PNG trailer, always the last 12 bytes


def png_bytes(rgb: np.ndarray, metadata: dict[str, Any] | None = None,
              params: tuple[int, ...] = PNG_PARAMS) -> bytes:
    """Encode an (H, W, 3) uint8 RGB image with OpenCV (several times faster than PIL's encoder) and add the
    metadata chunk before IEND. ``params``: OpenCV's PNG flags (the same pixels and flags give the same bytes)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise ImageReadError("could not encode the image as PNG")
    data = buf.tobytes()
    if metadata is None:
        return data
    return data[:-len(IEND)] + _itxt_chunk(PNG_META_KEY, json.dumps(metadata, sort_keys=True)) + IEND


def save_png(path: str | Path, rgb: np.ndarray, metadata: dict[str, Any] | None = None) -> Path:
    """Write a PNG with the edit's metadata as a JSON text chunk (key 'aufx'), creating the folder if needed.

    Large images are encoded straight to the file with their channels swapped in place for the encoder and back
    afterwards, so a 100-megapixel result needs neither a BGR copy nor the encoded bytes in memory."""
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:  # OpenCV picks its encoder by the extension
        if rgb.size >= 3 * DIRECT_DECODE_PIXELS and rgb.flags.c_contiguous and rgb.flags.writeable:
            _write_png_in_place(tmp, rgb, metadata)
        else:
            tmp.write_bytes(png_bytes(rgb, metadata))
    return path


def _write_png_in_place(tmp: Path, rgb: np.ndarray, metadata: dict[str, Any] | None) -> None:
    import cv2

    _swap_channels(rgb)
    try:
        ok = cv2.imwrite(str(tmp), rgb, PNG_PARAMS)
    finally:
        _swap_channels(rgb)
    if not ok:
        raise ImageReadError("could not encode the image as PNG")
    if metadata is not None:
        with open(tmp, "r+b") as f:
            f.seek(-len(IEND), io.SEEK_END)
            f.write(_itxt_chunk(PNG_META_KEY, json.dumps(metadata, sort_keys=True)) + IEND)


def save_image(path: str | Path, rgb: np.ndarray, metadata: dict[str, Any] | None = None) -> Path:
    """Write PNG (with metadata) or, by extension, JPEG/TIFF/WebP (metadata goes to the sidecar only)."""
    path = Path(path)
    if path.suffix.lower() in ("", ".png"):
        return save_png(path.with_suffix(".png") if not path.suffix else path, rgb, metadata)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".bmp": "BMP"}.get(
        path.suffix.lower())
    if fmt is None:
        raise ImageReadError(f"{path.name}: unsupported output format {path.suffix!r}; use .png, .jpg, .tif or .webp")
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return path


def read_png_metadata(path: str | Path) -> dict[str, Any] | None:
    with Image.open(path) as img:
        text = getattr(img, "text", {}) or img.info
        raw = text.get(PNG_META_KEY)
    return json.loads(raw) if raw else None
