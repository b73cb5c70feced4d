import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What a folder looks like now, cheaply: its modification time and each entry's. Every write of
 * an expert or of the router is a temp file renamed into place, which changes these, so an equal
 * stamp means the folder's contents can be taken as unchanged. '' when the folder does not exist.
 */
export function folderStamp(dir: string): string {
  if (!existsSync(dir)) return '';
  let stamp = String(statSync(dir).mtimeMs);
  for (const name of readdirSync(dir)) {
    try {
      stamp += `\0${name}:${statSync(join(dir, name)).mtimeMs}`;
    } catch {
      stamp += `\0${name}:gone`; // removed while listing: the next call sees the folder's new time
    }
  }
  return stamp;
}
