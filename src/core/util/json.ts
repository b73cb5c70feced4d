import { existsSync, readFileSync } from 'node:fs';
import { MoaError, errorMessage } from './errors';

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON object from a file; every failure is a MoaError that names the file and the problem. */
export function readJsonObject(file: string, missingHint?: string): Record<string, unknown> {
  if (!existsSync(file)) throw new MoaError(`${file}: missing`, missingHint);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MoaError(`${file}: not valid JSON (${errorMessage(e)})`);
  }
  if (!isObject(raw)) throw new MoaError(`${file}: expected a JSON object`);
  return raw;
}

/** For state and metadata files where "absent or unreadable" simply means "nothing recorded". */
export function readJsonObjectOr(file: string): Record<string, unknown> | undefined {
  try {
    return readJsonObject(file);
  } catch {
    return undefined;
  }
}
