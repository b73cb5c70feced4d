"""JSON-lines events on stdout and the stop request (stdin `{"cmd":"stop"}`, SIGTERM, SIGINT)."""

from __future__ import annotations

import _thread
import json
import math
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Optional, TextIO

from . import PROTOCOL_VERSION

_lock = threading.Lock()
_events: TextIO | None = None
_muted = False
# Called once when the reader of our events is gone (a broken pipe): the run stops cleanly.
_on_reader_lost: Optional[Callable[[str], None]] = None


def _say(text: str) -> None:
    """A line on stderr when someone may still read it; a dead reader (a broken pipe) is no error."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def set_muted(muted: bool) -> None:
    """Under torchrun only rank 0 speaks the protocol; the other ranks' events are dropped."""
    global _muted
    _muted = muted


def claim_stdout() -> None:
    """Keep fd 1 for events only: anything else printed (Python or C) goes to stderr.

    The reader tolerates noise on stdout, but a stray partial line glued to an event would
    cost that event, so library chatter is moved out of the way once, at start-up.
    """
    global _events
    sys.stdout.flush()
    _events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity; a diverged loss is reported as null rather than breaking the line.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(type_: str, **fields: Any) -> None:
    if _muted:
        return
    event = {"v": PROTOCOL_VERSION, "type": type_, **_clean(fields)}
    line = json.dumps(event, allow_nan=False, separators=(",", ":"))
    out = _events if _events is not None else sys.stdout
    with _lock:
        try:
            out.write(line + "\n")
            out.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            # The parent died or closed our stdout: nobody reads events any more. Keep training
            # state safe (the stop path checkpoints) instead of crashing mid-step.
            set_muted(True)
            if _on_reader_lost is not None:
                _on_reader_lost("stdout closed")
            _say(f"moa_trainer: events can no longer be written ({e}); stopping")


class StopRequested(BaseException):
    """A stop before the training loop began (while the model loads or is built): there is
    nothing to checkpoint, so the command ends at once. A BaseException, like KeyboardInterrupt,
    so that no `except Exception` on the way swallows it."""


class StopFlag:
    """Set by a stop request. The training loops poll it between steps; before they start
    (`begin_loop`), a stop interrupts whatever the main thread is doing (StopRequested)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.immediate = False

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()
        if self.immediate and threading.current_thread() is not threading.main_thread():
            # Delivered as SIGTERM in the main thread, whose handler raises StopRequested.
            _thread.interrupt_main(signal.SIGTERM)

    def is_set(self) -> bool:
        return self._event.is_set()

    def begin_loop(self) -> None:
        """From here on a stop is polled, so the loop can checkpoint before it ends."""
        self.immediate = False


def _read_stdin(flag: StopFlag, stream: TextIO) -> None:
    try:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                print(f"moa_trainer: ignoring non-JSON stdin line: {line[:200]!r}", file=sys.stderr)
                continue
            if isinstance(msg, dict) and msg.get("cmd") == "stop":
                flag.set("stdin")
    except (OSError, ValueError):
        # stdin closed or unreadable: the parent can still stop us with SIGTERM.
        return


def _watch_parent(flag: StopFlag, parent: int, every_s: float) -> None:
    # When the process that started us dies, we are re-parented: nobody will read our events or
    # release the run, so stop (with a checkpoint) rather than train on as an orphan.
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            set_muted(True)
            flag.set("parent exited")
            _say(f"moa_trainer: parent process {parent} exited; stopping")
            return


def install_stop_handlers(flag: StopFlag, stdin: TextIO | None = None, signals: bool = True,
                          watch_parent_s: float = 1.0) -> None:
    """Start the stdin and parent watchers and route SIGTERM/SIGINT to `flag`.

    EOF on stdin is not a stop: a parent that spawns with stdin ignored must not end the run
    (the parent watcher covers a parent that died). A second SIGINT falls through to
    KeyboardInterrupt so a terminal user can still abort. Until `flag.begin_loop()`, a stop
    raises StopRequested in the main thread.
    """
    global _on_reader_lost
    stream = stdin if stdin is not None else sys.stdin
    if stream is not None:
        threading.Thread(target=_read_stdin, args=(flag, stream), name="moa-stdin", daemon=True).start()
    if watch_parent_s > 0 and os.name == "posix":
        threading.Thread(target=_watch_parent, args=(flag, os.getppid(), watch_parent_s), name="moa-parent",
                         daemon=True).start()
    _on_reader_lost = flag.set

    def on_term(signum: int, frame: FrameType | None) -> None:
        flag.set("SIGTERM")
        if flag.immediate:
            raise StopRequested

    def on_int(signum: int, frame: FrameType | None) -> None:
        if flag.is_set() and not flag.immediate:
            raise KeyboardInterrupt
        flag.set("SIGINT")
        if flag.immediate:
            raise StopRequested

    if signals and threading.current_thread() is threading.main_thread():
        flag.immediate = True
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
