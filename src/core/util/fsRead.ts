import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, type Stats } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { MoaError } from './errors';

/** The most Node can hold in one Buffer (2 GiB - 1 on 64-bit builds since Node 20). */
export const MAX_BUFFER_BYTES = 2 ** 31 - 1;

/**
 * Opens a file for reading only if it is a regular file: a device such as /dev/zero would be read
 * for ever, and a FIFO (opened without blocking) would wait for a writer. The caller closes `fd`.
 * A missing file's error carries `missingHint`.
 */
export function openRegularFile(file: string, missingHint?: string): { fd: number; st: Stats } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw code === 'ENOENT' ? new MoaError(`${file}: missing`, missingHint) : new MoaError(`${file}: cannot be read (${code ?? String(e)})`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new MoaError(`${file}: not a regular file`);
  }
  return { fd, st };
}

/**
 * Reads a whole file, refusing what is not a regular file (a device such as /dev/zero would be
 * read forever, a FIFO would block) and what is larger than the format allows, before anything
 * is allocated. Every refusal names the file and the limit.
 */
export function readFileBounded(file: string, maxBytes: number, what = 'this file', missingHint?: string): Buffer {
  const { fd, st } = openRegularFile(file, missingHint);
  try {
    const limit = Math.min(maxBytes, MAX_BUFFER_BYTES);
    if (st.size > limit) throw new MoaError(`${file}: ${st.size} bytes is larger than the ${limit}-byte limit for ${what}`);
    const buf = Buffer.allocUnsafe(st.size);
    let at = 0;
    while (at < buf.length) {
      const n = readSync(fd, buf, at, buf.length - at, at);
      if (n === 0) break; // truncated while we read: the shorter content is what is there
      at += n;
    }
    return at === buf.length ? buf : buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * `rel`, a path read from a file inside `dir` (router.json's "weights", say), as an absolute path
 * that stays inside `dir`: absolute paths, `..` escapes and symlinks that lead out are refused.
 */
export function pathInside(dir: string, rel: string, source: string): string {
  const where = `${source}: path ${JSON.stringify(rel)}`;
  if (typeof rel !== 'string' || rel === '' || rel.includes('\0') || isAbsolute(rel)) throw new MoaError(`${where} must be relative to ${dir}`);
  const abs = resolve(dir, rel);
  const escapes = (from: string, to: string) => {
    const r = relative(from, to);
    return r === '' || r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r);
  };
  if (escapes(dir, abs)) throw new MoaError(`${where} leads outside ${dir}`);
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    return abs; // missing: the read that follows says so
  }
  if (escapes(realpathSync(dir), real)) throw new MoaError(`${where} leads outside ${dir} (through a symbolic link)`);
  return abs;
}
