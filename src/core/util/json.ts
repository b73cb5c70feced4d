import { MoaError, errorMessage } from './errors';
import { readFileBounded } from './fsRead';
import { lineOfJsonError } from './jsonLocate';

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Config, state and metadata files are small; one this large is not ours (or is an attack). */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** A JSON object from a file; every failure is a MoaError that names the file and the problem. */
export function readJsonObject(file: string, missingHint?: string, maxBytes = MAX_JSON_BYTES): Record<string, unknown> {
  const text = readFileBounded(file, maxBytes, 'a JSON file', missingHint).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const line = lineOfJsonError(text) ?? 1;
    throw new MoaError(`${file}: not valid JSON at line ${line} (${errorMessage(e)})`, undefined, { file, line });
  }
  if (!isObject(raw)) throw new MoaError(`${file}: expected a JSON object`);
  return raw;
}

/** For metadata files where "absent or unreadable" simply means "nothing recorded". */
export function readJsonObjectOr(file: string): Record<string, unknown> | undefined {
  try {
    return readJsonObject(file);
  } catch {
    return undefined;
  }
}
