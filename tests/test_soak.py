"""The soak bench's measurement helpers (autonomy_tools.soak): /proc parsing of this very
process and the memory slope, on a known leak and on noise around a flat line."""
import os
import subprocess
import sys

import numpy as np

from autonomy_tools.soak import ProcessSampler, read_cpu_s, read_rss_mb, slope_per_minute


def test_proc_readers_see_this_process():
    rss = read_rss_mb(os.getpid())
    assert rss is not None and 5.0 < rss < 100_000
    before = read_cpu_s(os.getpid())
    x = 0
    for i in range(2_000_000):      # burn a little CPU: the reading must not go down
        x += i
    assert read_cpu_s(os.getpid()) >= before
    assert read_rss_mb(2 ** 22 + 12345) is None        # no such pid


def test_slope_finds_a_leak_and_ignores_noise():
    t = np.arange(0, 600, 10.0)                         # 10 min of samples every 10 s
    leak = 300 + 0.8 * t / 60.0                         # 0.8 MB/min
    assert abs(slope_per_minute(t, leak) - 0.8) < 1e-9
    rng = np.random.default_rng(0)
    flat = 300 + rng.normal(0, 2.0, len(t))             # +-2 MB jitter, no trend
    assert abs(slope_per_minute(t, flat)) < 0.5
    assert np.isnan(slope_per_minute([1.0], [2.0]))


def test_sampler_records_a_death_with_its_exit_code():
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"])
    s = ProcessSampler([("short_lived", proc)], period=0.05).start()
    proc.wait(timeout=10)
    s.stop()
    deaths = s.deaths()
    assert [d["node"] for d in deaths] == ["short_lived"] and deaths[0]["exit_code"] == 3
    assert s.nodes["short_lived"].summary(0.0)["died"]
