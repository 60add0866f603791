"""Memory-mapped cache: decoded once, keyed by file path + mtime + tag, read back as a memmap."""
import os

import numpy as np
import soundfile as sf

from braintune.data import cache


def test_cached_array_computes_once_and_invalidates_on_change(tmp_path):
    src = tmp_path / "x.wav"
    sf.write(src, np.linspace(-0.5, 0.5, 1600, dtype=np.float32), 16000)
    calls = []

    def compute():
        calls.append(1)
        return sf.read(src, dtype="float32")[0]

    a = cache.cached_array(src, "audio@16000", compute, tmp_path / "c")
    b = cache.cached_array(src, "audio@16000", compute, tmp_path / "c")
    assert len(calls) == 1 and isinstance(b, np.memmap) and np.array_equal(a, b)
    cache.cached_array(src, "audio@8000", compute, tmp_path / "c")
    assert len(calls) == 2  # another tag (sample rate) is another entry
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.cached_array(src, "audio@16000", compute, tmp_path / "c")
    assert len(calls) == 3  # a newer file is decoded again


def test_load_audio_goes_through_configured_cache(tmp_path):
    from braintune.data.stimuli import load_audio

    src = tmp_path / "y.wav"
    sf.write(src, np.zeros(800, np.float32), 8000)
    cache.configure(tmp_path / "c")
    try:
        wave = load_audio(src, 16000)
    finally:
        cache.configure(None)
    assert len(wave) == 1600 and isinstance(wave, np.memmap) and len(list((tmp_path / "c").glob("y-*.npy"))) == 1
