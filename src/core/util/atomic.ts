import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileError } from './errors';
import { pidAlive } from './pid';

/**
 * A temp path beside the target, so the final rename stays on one file system. The name,
 * `.<name>.tmp-<pid>-<8 hex>`, is shared with the Python trainer (fsutil.temp_name): whoever comes
 * next knows from the pid whether the writer is gone and its leftovers can go.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

const TEMP = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

/** Writes a file so a reader sees the old content or the new, never half of it. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  try {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fileError(target, e);
  }
}

export function writeJsonAtomic(target: string, value: unknown): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Removes temp files and staging folders that a killed writer left in `dir` (and, with `deep`, in
 * its subfolders); a temp of a process still running is its work in progress and stays.
 */
export function removeStaleTemps(dir: string, deep = false): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const m = TEMP.exec(name);
    const p = join(dir, name);
    if (m && !pidAlive(Number(m[2]))) {
      rmSync(p, { recursive: true, force: true });
      removed++;
    } else if (deep && !m) {
      try {
        if (statSync(p).isDirectory()) removed += removeStaleTemps(p, true);
      } catch {
        // gone meanwhile
      }
    }
  }
  return removed;
}

/** Where `publishDir` keeps the version a new one replaced: one step of rollback. */
export function previousPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.prev`);
}

/**
 * A writer killed between `publishDir`'s two renames left no `target`, the previous version as
 * `.prev`, and the complete new one under its staging name: finish the publish (the trainer's
 * fsutil.recover_dir does the same). A folder the user deleted has no staging folder and stays
 * deleted. Returns whether it moved anything.
 */
export function recoverPublished(target: string): boolean {
  if (existsSync(target) || !existsSync(previousPath(target))) return false;
  const parent = dirname(target);
  let best: { path: string; mtime: number } | undefined;
  for (const name of readdirSync(parent)) {
    const m = TEMP.exec(name);
    if (!m || m[1] !== basename(target) || pidAlive(Number(m[2]))) continue;
    const st = statSync(join(parent, name));
    if (st.isDirectory() && (!best || st.mtimeMs > best.mtime)) best = { path: join(parent, name), mtime: st.mtimeMs };
  }
  if (!best) return false;
  renameSync(best.path, target);
  return true;
}

/**
 * Writes a whole folder so that it appears or changes in one step: `fill` writes a staging folder
 * beside `target`, which then takes its place; the version it replaces is kept as `.prev`.
 */
export function publishDir(target: string, fill: (staging: string) => void): string {
  mkdirSync(dirname(target), { recursive: true });
  recoverPublished(target);
  const staging = tempPathFor(target);
  mkdirSync(staging);
  try {
    fill(staging);
    if (existsSync(target)) {
      rmSync(previousPath(target), { recursive: true, force: true });
      renameSync(target, previousPath(target));
    }
    renameSync(staging, target);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return target;
}

/**
 * Swaps an expert (or the router) with the version it replaced; a second call swaps back.
 * Returns false when there is no previous version.
 */
export function swapWithPrevious(target: string): boolean {
  const prev = previousPath(target);
  if (!existsSync(prev)) return false;
  const aside = tempPathFor(target);
  if (existsSync(target)) renameSync(target, aside);
  renameSync(prev, target);
  if (existsSync(aside)) renameSync(aside, prev);
  return true;
}
