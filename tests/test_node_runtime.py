"""node_runtime's teardown hook: an exception rclpy's own finalizers cannot raise after a
shutdown (fresh clone run: 'Exception ignored in Future.__del__ ... AttributeError' when
SIGINT invalidated the executor while it built a Task) is one line, not a traceback;
anything else, and anything while the context is up, goes to the default hook."""
import gc
import sys
import types

from autonomy_stack.ros.node_runtime import teardown_unraisable_hook


def _rclpy_finalizer():
    def __del__(self):
        return self._exception     # never set: the object was half-built
    __del__.__module__ = "rclpy.task"
    __del__.__qualname__ = "Future.__del__"
    return type("Task", (), {"__del__": __del__, "__module__": "rclpy.task"})


def test_rclpy_finalizer_error_after_shutdown_is_one_line(capsys):
    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = teardown_unraisable_hook(lambda: False, seen.append)
    try:
        task = _rclpy_finalizer()()
        del task
        gc.collect()
    finally:
        sys.unraisablehook = old
    err = capsys.readouterr().err
    assert seen == []
    assert "ignored during shutdown in Future.__del__ (rclpy): AttributeError" in err
    assert "Traceback" not in err


def test_other_unraisables_and_rclpy_ones_while_running_go_to_the_default():
    seen = []
    up = teardown_unraisable_hook(lambda: True, seen.append)
    down = teardown_unraisable_hook(lambda: False, seen.append)
    rclpy_obj = _rclpy_finalizer().__del__
    mine = types.SimpleNamespace(exc_value=ValueError("x"), object=test_rclpy_finalizer_error_after_shutdown_is_one_line)
    up(types.SimpleNamespace(exc_value=AttributeError("a"), object=rclpy_obj))
    down(mine)
    assert len(seen) == 2
