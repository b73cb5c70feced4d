from __future__ import annotations

import io
import json
import time

import pytest

from moa_trainer.protocol import StopFlag, emit, install_stop_handlers
from moa_trainer.schedule import lr_at


def test_emit_writes_one_versioned_line(capsys: pytest.CaptureFixture[str]) -> None:
    emit("step", loss=float("nan"), nested={"x": float("inf")}, name="a")
    line = capsys.readouterr().out
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"v": 1, "type": "step", "loss": None, "nested": {"x": None}, "name": "a"}


def test_stdin_stop_sets_the_flag_and_noise_does_not() -> None:
    flag = StopFlag()
    install_stop_handlers(flag, io.StringIO('hello\n{"cmd":"pause"}\n'), signals=False)
    time.sleep(0.1)
    assert not flag.is_set()
    install_stop_handlers(flag, io.StringIO('\n{"cmd": "stop"}\n'), signals=False)
    deadline = time.monotonic() + 5
    while not flag.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.is_set() and flag.reason == "stdin"


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(1, 101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1)
