"""`main()` plumbing shared by every node: init, spin, clean shutdown on Ctrl-C/SIGTERM,
and start-up errors (bad parameters, missing checkpoint) turned into one log line and a
non-zero exit code instead of a traceback."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Sequence

from autonomy_stack.params import ParameterError

EXIT_STARTUP_ERROR = 2


class StartupError(RuntimeError):
    """A node cannot start (missing file, incompatible checkpoint, ...)."""


def run_node(factory: Callable[[], "object"], args: Optional[Sequence[str]] = None,
             executor_threads: int = 1) -> int:
    """Create the node with `factory()`, spin it until shutdown, return an exit code."""
    # lazy: rclpy only on this path: the module imports without ROS
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    # rclpy's own (C-level) handlers turn SIGINT and SIGTERM (the runner, launch, systemd)
    # into a shutdown that wakes a blocked executor. Do not replace them with a Python
    # handler: that one only runs when the executor's wait returns, which for a node
    # without timers is never.
    rclpy.init(args=list(args) if args is not None else sys.argv)
    sys.unraisablehook = teardown_unraisable_hook(rclpy.ok, sys.unraisablehook)
    node = None
    spinning = False
    code = 0
    try:
        node = factory()
        spinning = True
        if executor_threads > 1:
            executor = MultiThreadedExecutor(num_threads=executor_threads)
            executor.add_node(node)
            executor.spin()
        else:
            rclpy.spin(node)
    except (ParameterError, StartupError) as exc:
        name = getattr(node, "get_name", lambda: None)() or _node_name_from_args()
        print(f"[FATAL] [{name}]: start-up failed: {exc}", file=sys.stderr, flush=True)
        code = EXIT_STARTUP_ERROR
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001
        # Ctrl-C/SIGTERM shut the context down from rclpy's signal thread while the
        # executor was taking a message or a callback publishing (RuntimeError/RCLError on
        # an invalidated handle): that is the requested shutdown, not a failure. Anything
        # else (the context still up) is a real error and propagates.
        if not _shutdown_requested(rclpy):
            raise
        if not spinning:
            print(f"[{_node_name_from_args()}]: shut down during start-up "
                  f"({type(exc).__name__})", file=sys.stderr, flush=True)
    finally:
        if node is not None:
            _close(node, rclpy)
        rclpy.try_shutdown()
    return code


def teardown_unraisable_hook(context_ok: Callable[[], bool], default):
    """sys.unraisablehook: after a shutdown, an exception that rclpy's own finalizers
    cannot raise (a Task half-built when Ctrl-C/SIGTERM invalidated the executor: its
    Future.__del__ fails with AttributeError) is one line naming it, not a traceback;
    everything else, and anything while the context is up, goes to `default`."""
    def hook(unraisable):
        where = getattr(unraisable.object, "__module__", "") or ""
        if where.startswith("rclpy") and not context_ok():
            exc = unraisable.exc_value
            print(f"[{_node_name_from_args()}]: ignored during shutdown in "
                  f"{getattr(unraisable.object, '__qualname__', where)} (rclpy): "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return
        default(unraisable)
    return hook


def _shutdown_requested(rclpy, grace_s: float = 0.5) -> bool:
    """True once the context is shut down; waits up to `grace_s` for a shutdown that the
    signal thread has started (handles are invalidated before rclpy.ok() turns False)."""
    deadline = time.monotonic() + grace_s
    while rclpy.ok() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not rclpy.ok()


def _close(node, rclpy) -> None:
    """node.close() (if any) then destroy_node(); after a shutdown, a failure here (handles
    already invalid) is reported in one line instead of turning Ctrl-C into exit code 1."""
    for step in (getattr(node, "close", None), node.destroy_node):
        if not callable(step):
            continue
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            if rclpy.ok():
                raise
            print(f"[{_node_name_from_args()}]: {getattr(step, '__name__', 'close')} after "
                  f"shutdown: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _node_name_from_args() -> str:
    argv = sys.argv
    for i, a in enumerate(argv):
        if a.startswith("__node:="):
            return a.split(":=", 1)[1]
        if a == "-r" and i + 1 < len(argv) and argv[i + 1].startswith("__node:="):
            return argv[i + 1].split(":=", 1)[1]
    return sys.argv[0]
