from autonomy_perception.frame_sync import FrameSynchronizer

CAMS = ["a", "b", "c"]


def feed(sync, stamp, now, cams=CAMS, jitter=0.0):
    for i, c in enumerate(cams):
        sync.add(c, stamp + i * jitter, f"{c}@{stamp}", now)


def test_complete_frame_within_tolerance():
    s = FrameSynchronizer(CAMS, tolerance=0.005)
    feed(s, 1.0, now=1.0, jitter=0.002)
    f = s.pop_newest(now=1.01)
    assert f is not None and f.mask == [True] * 3 and f.images["c"] == "c@1.0"
    assert s.pop_newest(now=1.02) is None          # consumed


def test_incomplete_frame_waits_and_outside_tolerance_is_not_matched():
    s = FrameSynchronizer(CAMS, tolerance=0.005)
    feed(s, 1.0, now=1.0, cams=["a", "b"])
    s.add("c", 1.02, "late-c", 1.0)                 # 20 ms off: another frame
    assert s.pop_newest(now=1.01) is None


def test_newest_complete_frame_wins_and_older_are_counted_skipped():
    s = FrameSynchronizer(CAMS, tolerance=0.005, buffer_size=8)
    for k in range(3):
        feed(s, 1.0 + k / 36, now=1.0 + k / 36)
    f = s.pop_newest(now=1.1)
    assert abs(f.stamp - (1.0 + 2 / 36)) < 1e-9
    assert s.skipped == 2


def test_dead_camera_is_masked_instead_of_stalling():
    s = FrameSynchronizer(CAMS, tolerance=0.005, dead_after=0.3)
    feed(s, 0.0, now=0.0)
    assert s.pop_newest(now=0.0) is not None
    for k in range(1, 20):                          # camera c dies
        t = k / 36
        feed(s, t, now=t, cams=["a", "b"])
    assert s.dead_cameras(now=19 / 36) == ["c"]
    f = s.pop_newest(now=19 / 36)
    assert f is not None and f.mask == [True, True, False] and f.missing == ["c"]


def test_out_of_order_stamp_is_counted_not_emitted():
    s = FrameSynchronizer(CAMS, tolerance=0.005)
    feed(s, 2.0, now=2.0)
    assert s.pop_newest(now=2.0).stamp == 2.0
    assert s.add("a", 1.5, "old", now=2.01) is False
    assert s.out_of_order == 1


def test_buffers_are_bounded():
    s = FrameSynchronizer(CAMS, tolerance=0.005, buffer_size=4)
    for k in range(100):
        s.add("a", k * 0.03, k, now=k * 0.03)
    assert len(s.buffers["a"]) == 4
