import { closeSync, existsSync, lstatSync, openSync, readFileSync, readSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** Folders never worth training on: dependencies, build outputs, tool state, MoA's own files. */
export const DEFAULT_EXCLUDES = [
  '.git', '.hg', '.svn', '.moa', 'node_modules', 'dist', 'out', 'build', 'target', '.venv', 'venv',
  '__pycache__', '.pytest_cache', '.mypy_cache', '.tox', '.next', '.cache', 'coverage',
];

export type SkipReason = 'gitignored' | 'excluded' | 'too-large' | 'binary' | 'symlink' | 'unreadable';

export interface ScannedFile {
  relPath: string;
  absPath: string;
  size: number;
}

export interface ScanOptions {
  maxFileBytes: number;
  onSkip?: (relPath: string, reason: SkipReason) => void;
}

interface IgnoreScope {
  base: string;
  ig: Ignore;
}

function readGitignore(dir: string): Ignore | undefined {
  const file = join(dir, '.gitignore');
  if (!existsSync(file)) return undefined;
  try {
    return ignore().add(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function isIgnored(scopes: IgnoreScope[], relPath: string, isDir: boolean): boolean {
  for (const s of scopes) {
    const local = s.base ? relPath.slice(s.base.length + 1) : relPath;
    if (s.ig.ignores(isDir ? local + '/' : local)) return true;
  }
  return false;
}

const SNIFF_BYTES = 8192;

/**
 * Whether a file's first 8 KiB look like anything but text. A NUL byte (git's own test), or many
 * control characters, or bytes that are not UTF-8 and mostly above 0x7F (random or compressed
 * data) say binary; Latin-1 text, with its few high bytes, stays text.
 */
export function bytesLookBinary(sample: Uint8Array): boolean {
  if (sample.length === 0) return false;
  let control = 0;
  let high = 0;
  for (const b of sample) {
    if (b === 0) return true;
    if ((b < 0x20 && b !== 9 && b !== 10 && b !== 13 && b !== 12 && b !== 11 && b !== 27) || b === 0x7f) control++;
    else if (b >= 0x80) high++;
  }
  if (control / sample.length > 0.03) return true;
  if (high / sample.length <= 0.2) return false;
  // A sample cut inside a multi-byte character is still UTF-8: drop an incomplete tail first.
  let end = sample.length;
  for (let k = 1; k <= 3 && end - k >= 0; k++) {
    const b = sample[end - k]!;
    if ((b & 0xc0) !== 0x80) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (need > k) end -= k;
      break;
    }
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample.subarray(0, end));
    return false;
  } catch {
    return true;
  }
}

export function looksBinary(absPath: string): boolean {
  const fd = openSync(absPath, 'r');
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return bytesLookBinary(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/**
 * The rules for one path that is not a folder, shared by the walk and by `checkPath`: a dataset
 * file, a reason to skip it, or null for what is no dataset file at all (not a regular file, a
 * .gitignore).
 */
function fileVerdict(abs: string, rel: string, name: string, st: Stats, scopes: IgnoreScope[], opts: ScanOptions): { file: ScannedFile } | { skip: SkipReason } | null {
  if (st.isSymbolicLink()) return { skip: 'symlink' };
  if (!st.isFile() || name === '.gitignore') return null;
  if (isIgnored(scopes, rel, false)) return { skip: 'gitignored' };
  if (st.size > opts.maxFileBytes) return { skip: 'too-large' };
  try {
    if (looksBinary(abs)) return { skip: 'binary' };
  } catch {
    return { skip: 'unreadable' };
  }
  return { file: { relPath: rel, absPath: abs, size: st.size } };
}

/**
 * Walks a workspace, honouring nested .gitignore files and the default excludes; yields files in a
 * stable order, one at a time, so memory does not grow with the workspace. Symlinks are not followed
 * (no loops, nothing outside the workspace).
 */
export function* scanWorkspace(root: string, opts: ScanOptions): Generator<ScannedFile> {
  const skip = opts.onSkip ?? (() => undefined);
  function* walk(dirRel: string, scopes: IgnoreScope[]): Generator<ScannedFile> {
    const dirAbs = dirRel ? join(root, dirRel) : root;
    const own = readGitignore(dirAbs);
    const here = own ? [...scopes, { base: dirRel, ig: own }] : scopes;
    let names: string[];
    try {
      names = readdirSync(dirAbs).sort();
    } catch {
      skip(dirRel || '.', 'unreadable');
      return;
    }
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const abs = join(dirAbs, name);
      let st;
      try {
        st = lstatSync(abs);
      } catch {
        skip(rel, 'unreadable');
        continue;
      }
      if (st.isDirectory()) {
        if (DEFAULT_EXCLUDES.includes(name)) skip(rel, 'excluded');
        else if (isIgnored(here, rel, true)) skip(rel, 'gitignored');
        else yield* walk(rel, here);
        continue;
      }
      const v = fileVerdict(abs, rel, name, st, here, opts);
      if (v && 'skip' in v) skip(rel, v.skip);
      else if (v) yield v.file;
    }
  }
  yield* walk('', []);
}

/** Each folder's .gitignore, read once; cleared when any .gitignore changes. */
export class GitignoreCache {
  private readonly byDir = new Map<string, Ignore | null>();

  constructor(private readonly root: string) {}

  get(dirRel: string): Ignore | undefined {
    if (!this.byDir.has(dirRel)) this.byDir.set(dirRel, readGitignore(dirRel ? join(this.root, dirRel) : this.root) ?? null);
    return this.byDir.get(dirRel) ?? undefined;
  }

  clear(): void {
    this.byDir.clear();
  }
}

export type PathCheck = { file: ScannedFile } | { skip: SkipReason } | { gone: true };

/**
 * The scan's verdict on one path, without walking the workspace: what a watcher needs when it is
 * told that a single file changed. Applies the walk's rules (`fileVerdict`, the same folder rules).
 */
export function checkPath(root: string, relPath: string, opts: ScanOptions, ignores: GitignoreCache): PathCheck {
  const parts = relPath.split('/');
  const name = parts[parts.length - 1]!;
  let scopes: IgnoreScope[] = [];
  for (let i = 0; i < parts.length; i++) {
    const dirRel = parts.slice(0, i).join('/');
    const own = ignores.get(dirRel);
    if (own) scopes = [...scopes, { base: dirRel, ig: own }];
    if (i === parts.length - 1) break;
    const sub = parts.slice(0, i + 1).join('/');
    if (DEFAULT_EXCLUDES.includes(parts[i]!)) return { skip: 'excluded' };
    if (isIgnored(scopes, sub, true)) return { skip: 'gitignored' };
  }
  const abs = join(root, ...parts);
  let st;
  try {
    st = lstatSync(abs);
  } catch {
    return { gone: true };
  }
  return fileVerdict(abs, relPath, name, st, scopes, opts) ?? { gone: true };
}
