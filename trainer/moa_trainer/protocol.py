"""JSON-lines events on stdout and the stop request (stdin `{"cmd":"stop"}`, SIGTERM, SIGINT)."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from . import PROTOCOL_VERSION

_lock = threading.Lock()
_events: TextIO | None = None
_muted = False


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
        out.write(line + "\n")
        out.flush()


class StopFlag:
    """Set by a stop request; the training loops poll it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


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


def install_stop_handlers(flag: StopFlag, stdin: TextIO | None = None, signals: bool = True) -> None:
    """Start the stdin watcher thread and route SIGTERM/SIGINT to `flag`.

    EOF on stdin is not a stop: a parent that spawns with stdin ignored must not end the run.
    A second SIGINT falls through to KeyboardInterrupt so a terminal user can still abort.
    """
    stream = stdin if stdin is not None else sys.stdin
    if stream is not None:
        threading.Thread(target=_read_stdin, args=(flag, stream), name="moa-stdin", daemon=True).start()

    def on_term(signum: int, frame: FrameType | None) -> None:
        flag.set("SIGTERM")

    def on_int(signum: int, frame: FrameType | None) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set("SIGINT")

    if signals and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
