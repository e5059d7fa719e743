"""Video files in and out: frames as RGB uint8 arrays, MP4 (H.264, yuv420p) and GIF output, the source's audio kept.

Everything goes through the ffmpeg binary that ships with imageio-ffmpeg, so no system ffmpeg is needed. Frames are
streamed (never the whole video in memory, except for GIFs, which are short by nature).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from aufx.io.files import atomic_path

ProgressCallback = Callable[[int, "int | None"], None]  # (frames done, total frames or None)
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*: Audio:", re.MULTILINE)


class VideoFormatError(ValueError):
    """A file ffmpeg cannot read as video; the message names the file and ffmpeg's reason."""


@dataclass(frozen=True)
class VideoMeta:
    path: Path
    fps: float
    n_frames: int          # counted by decoding the video stream: exact, not estimated from the duration
    size: tuple[int, int]  # (width, height) of the frames read_video yields
    has_audio: bool

    @property
    def duration(self) -> float:
        """Seconds of video: n_frames / fps."""
        return self.n_frames / self.fps if self.fps else 0.0


def has_audio(path: str | Path) -> bool:
    """Whether a media file (video or plain audio) has an audio stream, from ffmpeg's description of its input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True, errors="replace")
    return bool(_AUDIO_STREAM.search(out.stderr))


def probe_video(path: str | Path) -> VideoMeta:
    """Metadata of a video file; ``n_frames`` is counted by ffmpeg decoding the stream once (exact, not estimated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        header = next(reader)
        n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, IndexError) as exc:  # imageio-ffmpeg's ways of saying "no video stream here"
        lines = [line.strip(" '\"") for line in str(exc).splitlines() if line.strip()]
        raise VideoFormatError(f"{path}: not a readable video ({lines[-1] if lines else repr(exc)})") from None
    finally:
        reader.close()
    return VideoMeta(path, float(header["fps"]), int(n_frames), tuple(header["size"]), has_audio(path))


def _frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        next(reader)
        width, height = size
        for buf in reader:
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3).copy()
    finally:
        reader.close()


def read_video(path: str | Path) -> tuple[Iterator[np.ndarray], VideoMeta]:
    """Frames as (H, W, 3) RGB uint8 arrays, decoded lazily, and the video's metadata."""
    meta = probe_video(path)
    return _frames(meta.path, meta.size), meta


class VideoWriter:
    """Write frames one at a time: ``with VideoWriter("out.mp4", fps=30) as w: w.write(frame)``.

    ``.mp4``: H.264 (libx264) in yuv420p, which every player accepts; yuv420p needs even sizes, so an odd width or
    height gets one edge-replicated column/row (padding, not scaling: no pixel is resampled). ``crf`` 18 is visually
    lossless. ``.gif``: frames are kept and written at close; GIF delays are whole centiseconds, so 30 fps plays at
    about 33 fps, and identical consecutive frames are merged into one longer frame by the GIF encoder.
    ``progress(done, total)`` is called after every frame.
    """

    def __init__(self, path: str | Path, fps: float, *, crf: int = 18, progress: ProgressCallback | None = None,
                 total: int | None = None):
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".mp4", ".gif"):
            raise ValueError(f"{self.path}: can write .mp4 or .gif, not {self.path.suffix or 'no extension'}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps, self.crf, self.progress, self.total = float(fps), crf, progress, total
        self.n_frames = 0
        self._size: tuple[int, int] | None = None  # (height, width) of the input frames
        self._gif_frames: list[np.ndarray] = []
        self._encoder = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # do not leave a truncated file that looks like a result
            self._stop()
            self.path.unlink(missing_ok=True)

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) RGB uint8 arrays, got {frame.dtype} {frame.shape}")
        if self._size is None:
            self._size = frame.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.n_frames} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the video is {self._size[1]}x{self._size[0]}")
        if self.kind == ".gif":
            self._gif_frames.append(frame.copy())
        else:
            pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
            frame = np.ascontiguousarray(np.pad(frame, pad, mode="edge"))
            if self._encoder is None:
                self._encoder = imageio_ffmpeg.write_frames(
                    str(self.path), (frame.shape[1], frame.shape[0]), fps=self.fps, codec="libx264",
                    pix_fmt_out="yuv420p", quality=None, macro_block_size=1, output_params=["-crf", str(self.crf)])
                self._encoder.send(None)
            self._encoder.send(frame)
        self.n_frames += 1
        if self.progress:
            self.progress(self.n_frames, self.total)

    def _stop(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    def close(self) -> None:
        if self.n_frames == 0:
            raise ValueError(f"{self.path}: no frames were written")
        if self.kind == ".gif" and self._gif_frames:
            iio.imwrite(self.path, np.stack(self._gif_frames), duration=round(1000 / self.fps), loop=0)
            self._gif_frames = []
        self._stop()


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, crf: int = 18,
                progress: ProgressCallback | None = None, total: int | None = None) -> Path:
    """Write all frames of an iterable (e.g. a generator of edited frames) to an .mp4 or .gif."""
    with VideoWriter(path, fps, crf=crf, progress=progress, total=total) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def copy_audio(src: str | Path, video: str | Path, out: str | Path) -> bool:
    """Write ``out``: the video stream of ``video`` (copied, not re-encoded) with the first audio stream of ``src``.

    The audio is stream-copied when MP4 accepts its codec (AAC, MP3, ...), otherwise re-encoded to AAC, and cut to the
    video's length; the video is never cut (``-shortest`` would drop the last frames when the audio ends a little
    early, as AAC tracks often do). Without audio in ``src``, ``out`` is just the video. ``out`` may be ``video`` itself.
    Returns whether audio was added.
    """
    src, video, out = Path(src), Path(video), Path(out)
    if not video.is_file():
        raise FileNotFoundError(f"{video} does not exist")
    if not has_audio(src):
        if out.resolve() != video.resolve():
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(video, out)
        return False
    duration = probe_video(video).duration
    errors = []
    with atomic_path(out, keep_suffix=True) as tmp:  # ffmpeg picks the container by the extension
        for audio_codec in ("copy", "aac"):
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(src),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", audio_codec, "-t", f"{duration:.6f}",
                   str(tmp)]
            run = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
            if run.returncode == 0:
                return True
            errors.append(f"-c:a {audio_codec}: {run.stderr.strip()[-500:]}")
        raise RuntimeError(f"ffmpeg could not put the audio of {src} onto {video}:\n" + "\n".join(errors))
