"""Command line: `python -m moa_trainer {doctor,train,export,pretrain,merge} --config <json>`.

Every outcome on stdout is a protocol event: success ends in `done` (exit 0), any failure in
`error` (exit 1; exit 2 for bad usage). Tracebacks go to stderr only.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import NoReturn, Optional, Sequence

from .errors import TrainerError
from .protocol import StopFlag, StopRequested, claim_stdout, emit, install_stop_handlers

COMMANDS = ("doctor", "train", "export", "pretrain", "merge")
TORCH_HINT = ('run "moa setup" (in VS Code: "MoA: Set Up Trainer Environment") to make an environment with it, '
              "or pip install -r trainer/requirements.txt into this one")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moa_trainer", description="MoA Studio trainer (JSON-lines protocol on stdout)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}",
                           parser_class=_Parser)
    doctor = sub.add_parser("doctor", help="report python, torch and device")
    doctor.add_argument("--config", help="optional; accepted for symmetry")
    for name, help_ in (("train", "train domain LoRA experts"), ("export", "export the ONNX decoder"),
                        ("pretrain", "pretrain a base model from scratch"),
                        ("merge", "merge experts into one, as peft's add_weighted_adapter")):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--config", required=True, help="JSON config file")
        if name == "train":
            cmd.add_argument("--resume", action="store_true",
                             help="continue from the last checkpoint in run_dir/checkpoints")
    return p


def _dispatch(command: str, config: Optional[str], stop: StopFlag, resume: bool = False) -> None:
    try:
        import torch  # noqa: F401  (fail early with an install hint, not deep inside a module)
    except ImportError as e:
        raise TrainerError(f"PyTorch is not importable by {sys.executable}: {e}", TORCH_HINT) from None
    if command == "doctor":
        from .doctor import run as doctor
        doctor()
    elif command == "train":
        from .train import run as train
        train(config or "", stop, resume)
    elif command == "export":
        from .export import run as export
        export(config or "")
    elif command == "pretrain":
        from .pretrain import run as pretrain
        pretrain(config or "", stop)
    elif command == "merge":
        from .merge import run as merge
        merge(config or "")


def main(argv: Optional[Sequence[str]] = None, own_stdout: bool = True) -> int:
    if own_stdout:
        claim_stdout()
    try:
        args = _parser().parse_args(argv)
    except UsageError as e:
        emit("error", message=str(e), hint="usage: python -m moa_trainer {doctor,train,export,pretrain} "
                                            "--config <file.json>")
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    stop = StopFlag()
    if args.command in ("train", "pretrain"):
        install_stop_handlers(stop)
    started = time.perf_counter()
    try:
        _dispatch(args.command, args.config, stop, bool(getattr(args, "resume", False)))
        return 0
    except StopRequested:
        # Stopped while loading: no step ran, nothing was written, nothing to checkpoint.
        emit("done", stopped=True, elapsed_s=round(time.perf_counter() - started, 3), stage=None, stages=[],
             steps_done=0, experts=[], checkpoint=None, reason=stop.reason)
        return 0
    except TrainerError as e:
        emit("error", message=e.message, hint=e.hint)
    except MemoryError:
        traceback.print_exc(file=sys.stderr)
        emit("error", message=f"{args.command}: out of memory",
             hint="lower batch_size or seq_len, or use a smaller base model")
    except KeyboardInterrupt:
        emit("error", message=f"{args.command}: interrupted", hint=None)
    except Exception as e:  # noqa: BLE001 - the protocol promises an error event for every failure
        traceback.print_exc(file=sys.stderr)
        where = f" (config {args.config})" if args.config else ""
        emit("error", message=f"{args.command} failed{where}: {type(e).__name__}: {e}",
             hint=_hint_for(e) or "see the trainer's stderr for the traceback")
    return 1


def _hint_for(e: Exception) -> Optional[str]:
    text = str(e)
    if "out of memory" in text.lower():
        return "lower batch_size or seq_len, or use a smaller base model"
    if isinstance(e, OSError) and e.errno == 28:
        return "the disk is full"
    return None
