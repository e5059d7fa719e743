"""Video in and out with imageio-ffmpeg's own ffmpeg: counts, fps, sizes, GIF, and the source's audio kept."""
import math
import struct
import subprocess
import wave

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from skimage.data import astronaut

from aufx.io.video import (VideoFormatError, VideoWriter, copy_audio, has_audio, probe_video, read_video,
                           write_video)

FPS, N = 15, 15
H, W = 97, 127  # odd on purpose: yuv420p needs even sizes


def clip_frames():
    """A short head-and-shoulders clip: the test face, panning a few pixels per frame."""
    face = astronaut()[: H * 4 : 4, : W * 4 : 4]
    return [np.ascontiguousarray(np.roll(face, 2 * i, axis=1)) for i in range(N)]


def sine_wav(path, seconds=1.0, rate=16000, hz=440.0):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate)))
                               for i in range(int(seconds * rate))))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    frames = clip_frames()
    silent = write_video(d / "silent.mp4", frames, FPS)
    wav = sine_wav(d / "tone.wav")
    talking = d / "talking.mp4"  # a source video with an AAC audio track, as a camera would give
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(silent), "-i", str(wav),
                    "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest", str(talking)],
                   check=True)
    return {"dir": d, "frames": frames, "silent": silent, "wav": wav, "talking": talking}


def test_mp4_round_trip(media):
    frames_iter, meta = read_video(media["silent"])
    assert (meta.fps, meta.n_frames, meta.size, meta.has_audio) == (FPS, N, (W + 1, H + 1), False)
    assert meta.duration == pytest.approx(1.0)
    frames = list(frames_iter)
    assert len(frames) == N and frames[0].shape == (H + 1, W + 1, 3) and frames[0].dtype == np.uint8
    for got, sent in zip(frames[::7], media["frames"][::7]):
        crop = got[:H, :W].astype(int)
        assert np.abs(crop - sent).mean() < 4                                     # crf 18: close to the input
        np.testing.assert_allclose(crop.mean(axis=(0, 1)), sent.mean(axis=(0, 1)), atol=2)  # RGB, not BGR
    padded_row = frames[0][H, :W].astype(int)  # edge-replicated, not black: compare with the source's last row
    assert np.abs(padded_row - media["frames"][0][H - 1]).mean() < 6
    frames[0][0, 0] = 0  # frames are writable arrays


def test_progress_callback_and_context_manager(tmp_path):
    calls = []
    frames = clip_frames()[:5]
    with VideoWriter(tmp_path / "p.mp4", fps=25, progress=lambda done, total: calls.append((done, total)),
                     total=5) as writer:
        for f in frames:
            writer.write(f)
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    meta = probe_video(tmp_path / "p.mp4")
    assert (meta.n_frames, meta.fps, meta.duration) == (5, 25, pytest.approx(0.2))


def test_gif(tmp_path):
    frames = clip_frames()[:6]
    path = write_video(tmp_path / "loop.gif", frames, fps=10)
    gif = iio.imread(path, index=None)
    assert gif.shape == (6, H, W, 3)  # GIF keeps odd sizes
    assert np.abs(gif[3].astype(int) - frames[3]).mean() < 6
    assert iio.immeta(path)["loop"] == 0 and iio.immeta(path)["duration"] == 100


def test_copy_audio_from_a_video(media, tmp_path):
    assert has_audio(media["talking"]) and not has_audio(media["silent"])
    edited = write_video(tmp_path / "edited.mp4", [f[::-1].copy() for f in media["frames"]], FPS)
    out = tmp_path / "final.mp4"
    assert copy_audio(media["talking"], edited, out) is True
    meta = probe_video(out)
    assert (meta.has_audio, meta.n_frames, meta.fps, meta.size) == (True, N, FPS, (W + 1, H + 1))
    first = next(read_video(out)[0])
    assert np.abs(first[:H, :W].astype(int) - media["frames"][0][::-1]).mean() < 4  # the edited frames, untouched


def test_copy_audio_reencodes_what_mp4_cannot_hold_and_works_in_place(media, tmp_path):
    edited = write_video(tmp_path / "edited.mp4", media["frames"], FPS)
    assert copy_audio(media["wav"], edited, edited) is True  # PCM WAV -> AAC, written over the input
    meta = probe_video(edited)
    assert meta.has_audio and meta.n_frames == N
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_not_a_video_is_a_clear_error(media, tmp_path):
    with pytest.raises(VideoFormatError, match=r"tone\.wav: not a readable video"):
        read_video(media["wav"])
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoFormatError, match=r"notes\.mp4: not a readable video \(.*Invalid data"):
        probe_video(tmp_path / "notes.mp4")


def test_copy_audio_without_audio_gives_the_video(media, tmp_path):
    out = tmp_path / "same.mp4"
    assert copy_audio(media["silent"], media["silent"], out) is False
    assert out.read_bytes() == media["silent"].read_bytes() and not has_audio(out)


def test_writer_errors(tmp_path):
    frame = clip_frames()[0]
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif, not \.avi"):
        VideoWriter(tmp_path / "x.avi", 30)
    with VideoWriter(tmp_path / "x.mp4", 30) as writer:
        with pytest.raises(ValueError, match="RGB uint8"):
            writer.write(frame.astype(np.float32))
        writer.write(frame)
        with pytest.raises(ValueError, match=r"frame 1 is 60x50, the video is 127x97"):
            writer.write(np.zeros((50, 60, 3), np.uint8))
    assert probe_video(tmp_path / "x.mp4").n_frames == 1
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "broken.mp4", 30) as writer:
            writer.write(frame)
            raise RuntimeError("the engine failed mid-video")
    assert not (tmp_path / "broken.mp4").exists()  # no truncated file that looks like a result
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], 30)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
