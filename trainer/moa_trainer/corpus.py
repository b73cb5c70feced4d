"""Text corpus for pretraining the built-in byte-level base: a fixed selection of files.

Selection is deterministic: files under each source root that match its pattern, ordered by
the SHA-256 of their relative path (a fixed pseudo-random order, so a byte cap samples the
whole tree rather than its alphabetically first folders), taken until the source's byte cap.
The held-out split is by file, also from that hash.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Fields
from .errors import TrainerError

BOS, EOS, VOCAB = 256, 257, 258
# With FIM, three sentinels follow EOS, named as StarCoder's so every FIM-aware tool finds them.
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = 258, 259, 260
FIM_NAMES = {FIM_PREFIX: "<fim_prefix>", FIM_MIDDLE: "<fim_middle>", FIM_SUFFIX: "<fim_suffix>"}
VOCAB_FIM = 261
STDLIB = "$python_stdlib"


@dataclass(frozen=True)
class Source:
    kind: str
    root: Path
    pattern: str
    recursive: bool
    exclude_dirs: tuple[str, ...]
    max_bytes: int
    max_file_bytes: int


@dataclass
class SourceStats:
    kind: str
    root: str
    files: int = 0
    bytes: int = 0
    val_files: int = 0
    val_bytes: int = 0


@dataclass
class Corpus:
    train: np.ndarray
    val: np.ndarray
    stats: list[SourceStats] = field(default_factory=list)


def parse_sources(raw: list[object], base_dir: Path, source: str) -> list[Source]:
    out: list[Source] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise TrainerError(f"{source}: corpus.sources[{i}] must be an object", None)
        f = Fields(item, f"{source}: corpus.sources[{i}]")
        root_s = f.str("root", required=True)
        root = Path(sysconfig.get_paths()["stdlib"]) if root_s == STDLIB else base_dir / root_s
        out.append(Source(kind=f.str("kind", required=True), root=root.resolve(),
                          pattern=f.str("pattern", required=True),
                          recursive=bool(item.get("recursive", True)),
                          exclude_dirs=tuple(str(d) for d in f.list("exclude_dirs")),
                          max_bytes=f.int("max_bytes", required=True, minimum=1),
                          max_file_bytes=f.int("max_file_bytes", 1 << 20, minimum=1)))
    if not out:
        raise TrainerError(f"{source}: corpus.sources is empty", None)
    return out


def _candidates(src: Source) -> list[Path]:
    if not src.root.is_dir():
        raise TrainerError(f"corpus source {src.kind!r}: folder not found: {src.root}",
                           "run `npm ci` in the repository first" if "node_modules" in src.root.parts else None)
    found: list[Path] = []
    if src.recursive:
        for dirpath, dirnames, filenames in os.walk(src.root):
            dirnames[:] = [d for d in dirnames if d not in src.exclude_dirs]
            found += [Path(dirpath, n) for n in filenames if fnmatch.fnmatchcase(n, src.pattern)]
    else:
        found = [p for p in src.root.iterdir() if fnmatch.fnmatchcase(p.name, src.pattern)]
    return [p for p in found if p.is_file() and not p.is_symlink()]


def _digest(kind: str, rel: str) -> bytes:
    return hashlib.sha256(f"{kind}/{rel}".encode("utf-8")).digest()


def _clip(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    cut = data.rfind(b"\n", 0, limit)
    # Cut at a line end so a truncated file does not end mid-token.
    return data[: cut + 1] if cut > 0 else data[:limit]


def build(sources: list[Source], val_percent: int) -> Corpus:
    train_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    stats: list[SourceStats] = []
    for src in sources:
        st = SourceStats(src.kind, str(src.root))
        files = sorted(((_digest(src.kind, p.relative_to(src.root).as_posix()), p) for p in _candidates(src)))
        for digest, path in files:
            if st.bytes >= src.max_bytes:
                break
            data = path.read_bytes()
            if b"\0" in data[:4096] or not data.strip():
                continue  # binary or empty: not text to learn from
            data = _clip(data, min(src.max_file_bytes, src.max_bytes - st.bytes))
            ids = np.empty(len(data) + 2, dtype=np.uint16)
            ids[0], ids[-1] = BOS, EOS
            ids[1:-1] = np.frombuffer(data, dtype=np.uint8)
            is_val = int.from_bytes(digest[:4], "big") % 100 < val_percent
            (val_parts if is_val else train_parts).append(ids)
            st.files += 1
            st.bytes += len(data)
            if is_val:
                st.val_files += 1
                st.val_bytes += len(data)
        if st.files == 0:
            raise TrainerError(f"corpus source {src.kind!r}: no files matching {src.pattern!r} under {src.root}",
                               None)
        stats.append(st)
    empty = np.zeros(0, dtype=np.uint16)
    return Corpus(np.concatenate(train_parts) if train_parts else empty,
                  np.concatenate(val_parts) if val_parts else empty, stats)
