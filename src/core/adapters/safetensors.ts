import { closeSync, readSync } from 'node:fs';
import { MoaError } from '../util/errors';
import { writeFileAtomic } from '../util/atomic';
import { MAX_BUFFER_BYTES, openRegularFile, readFileBounded } from '../util/fsRead';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<Dtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** A header beyond this is not an adapter, it is an attack or a corrupt file. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  file: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** The data section (after the header). */
  data: Uint8Array;
}

function fail(file: string, problem: string): never {
  throw new MoaError(`${file}: invalid safetensors: ${problem}`);
}

/**
 * The tensors a header declares, checked as the reference implementation checks them: known
 * dtypes, sane shapes, string metadata, and offsets that tile the data section exactly (in
 * order, no overlap, no gap, nothing left over), so no claim in a header is ever trusted.
 */
function parseHeader(file: string, headerBytes: Uint8Array, dataLength: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(file, `header is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(file, 'header is not a JSON object');
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
        fail(file, '__metadata__ must map strings to strings');
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail(file, `tensor "${name}" entry is not an object`);
    if (typeof t.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, t.dtype)) fail(file, `tensor "${name}" has unsupported dtype ${JSON.stringify(t.dtype)}`);
    const dtype = t.dtype as Dtype;
    if (!Array.isArray(t.shape) || t.shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
      fail(file, `tensor "${name}" has an invalid shape ${JSON.stringify(t.shape)}`);
    }
    const shape = t.shape as number[];
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)) {
      fail(file, `tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataLength) fail(file, `tensor "${name}" data [${begin}, ${end}) lies outside the ${dataLength}-byte data section`);
    const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) fail(file, `tensor "${name}" holds ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`);
    tensors.set(name, { dtype, shape, begin, end });
  }
  let at = 0;
  for (const [name, t] of [...tensors].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)) {
    if (t.begin !== at) fail(file, `tensor "${name}" starts at byte ${t.begin} of the data section, expected ${at} (tensors overlap or leave a gap)`);
    at = t.end;
  }
  if (at !== dataLength) fail(file, `the tensors cover ${at} bytes but the data section holds ${dataLength}`);
  return { tensors, metadata };
}

/** The header's length from the file's first bytes (`start`, 8 when whole), checked against the cap and the file's `size`. */
function headerLength(file: string, start: Uint8Array, size: number): number {
  if (start.length < 8) fail(file, `file is ${size} bytes, shorter than the 8-byte header length`);
  const n = new DataView(start.buffer, start.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte cap`);
  if (8 + Number(n) > size) fail(file, `header length ${n} runs past the end of the file (${size} bytes)`);
  return Number(n);
}

/** Parses and bounds-checks a safetensors buffer; names the file in every error. */
export function parseSafetensors(file: string, buf: Uint8Array): SafetensorsFile {
  const n = headerLength(file, buf.subarray(0, 8), buf.length);
  const data = buf.subarray(8 + n);
  return { file, ...parseHeader(file, buf.subarray(8, 8 + n), data.length), data };
}

/** Adapters and routers are megabytes; past 2 GiB a file is not one (and Node cannot hold it). */
export function readSafetensors(file: string, maxBytes = MAX_BUFFER_BYTES): SafetensorsFile {
  return parseSafetensors(file, readFileBounded(file, maxBytes, 'a safetensors adapter'));
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A tensor's values as float32, converting F16/BF16/F64. */
export function tensorToFloat32(st: SafetensorsFile, name: string): Float32Array {
  const t = st.tensors.get(name);
  if (!t) throw new MoaError(`${st.file}: tensor "${name}" is missing`);
  const bytes = st.data.subarray(t.begin, t.end);
  const count = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < count; i++) {
        u[0] = dv.getUint16(i * 2, true) << 16;
        out[i] = f[0]!;
      }
      return out;
    }
    default:
      throw new MoaError(`${st.file}: tensor "${name}" is ${t.dtype}, not a floating-point tensor`);
  }
}

/** Writes F32 tensors as safetensors (keys sorted, as the reference implementation does). */
export function writeSafetensorsF32(file: string, tensors: Map<string, { shape: number[]; data: Float32Array }>, metadata: Record<string, string> = {}): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header['__metadata__'] = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const dv = new DataView(out.buffer, pos, t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(i * 4, t.data[i]!, true);
    pos += t.data.length * 4;
  }
  writeFileAtomic(file, out);
}

/** The header alone, validated against the file's size (for listings: the data is not read). */
export function readSafetensorsHeader(file: string): Map<string, TensorInfo> {
  const { fd, st } = openRegularFile(file);
  try {
    const start = Buffer.alloc(8);
    const header = Buffer.alloc(headerLength(file, start.subarray(0, readSync(fd, start, 0, 8, 0)), st.size));
    if (readSync(fd, header, 0, header.length, 8) !== header.length) fail(file, 'header runs past the end of the file');
    return parseHeader(file, header, st.size - 8 - header.length).tensors;
  } finally {
    closeSync(fd);
  }
}

/** How many elements the tensors hold together. */
export function countElements(tensors: Map<string, TensorInfo>): number {
  let total = 0;
  for (const t of tensors.values()) total += t.shape.reduce((a, b) => a * b, 1);
  return total;
}

/** Element count of every tensor, from the header alone. */
export function countSafetensorsElements(file: string): number {
  return countElements(readSafetensorsHeader(file));
}
