import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { Cancelled } from '../util/errors';
import { tempPathFor } from '../util/atomic';

/**
 * GGUF version 3 (llama.cpp's model and adapter file; ggml's docs/gguf.md): a header, typed
 * metadata, tensor descriptions, then each tensor's data at an offset aligned to 32 bytes.
 */

const ALIGNMENT = 32;
/** Zero bytes that bring `n` bytes to the next multiple of ALIGNMENT. */
const padding = (n: number): number => (ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT;

/** GGUF metadata value types. */
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

export type MetaValue =
  | { u32: number }
  | { i32: number }
  | { f32: number }
  | { bool: boolean }
  | string
  | { strings: readonly string[] }
  | { i32s: readonly number[] };

/** ggml tensor types this writer produces. */
export const GGML_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

export interface GgufTensor {
  name: string;
  /** Row-major shape as torch and safetensors give it (outermost first); GGUF stores it reversed. */
  shape: readonly number[];
  type: GgmlType;
  data: Float32Array;
}

class Bytes {
  private chunks: Buffer[] = [];
  size = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }
  private fixed(size: number, write: (b: Buffer) => void): void {
    const b = Buffer.alloc(size);
    write(b);
    this.push(b);
  }
  u32(v: number): void {
    this.fixed(4, (b) => b.writeUInt32LE(v));
  }
  i32(v: number): void {
    this.fixed(4, (b) => b.writeInt32LE(v));
  }
  u64(v: number): void {
    this.fixed(8, (b) => b.writeBigUInt64LE(BigInt(v)));
  }
  f32(v: number): void {
    this.fixed(4, (b) => b.writeFloatLE(v));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  pad(): void {
    this.push(Buffer.alloc(padding(this.size)));
  }
  take(): Buffer {
    const b = Buffer.concat(this.chunks);
    this.chunks = [];
    return b;
  }
}

function writeValue(out: Bytes, v: MetaValue): void {
  if (typeof v === 'string') {
    out.u32(T.string);
    return out.str(v);
  }
  if ('u32' in v) return out.u32(T.u32), out.u32(v.u32);
  if ('i32' in v) return out.u32(T.i32), out.i32(v.i32);
  if ('f32' in v) return out.u32(T.f32), out.f32(v.f32);
  if ('bool' in v) return out.u32(T.bool), out.push(Buffer.from([v.bool ? 1 : 0]));
  out.u32(T.array);
  if ('strings' in v) {
    out.u32(T.string);
    out.u64(v.strings.length);
    v.strings.forEach((s) => out.str(s));
  } else {
    out.u32(T.i32);
    out.u64(v.i32s.length);
    v.i32s.forEach((x) => out.i32(x));
  }
}

/** IEEE half from a float, rounded to nearest even (as numpy's astype(float16)). */
export function toHalf(f: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, f);
  const x = buf.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** Bytes a tensor of `n` values takes: a q8_0 block is an f16 scale and 32 int8s, a q4_0 block an f16 scale and 32 nibbles. */
export function typeBytes(type: GgmlType, n: number): number {
  return type === 'f32' ? n * 4 : type === 'f16' ? n * 2 : type === 'q8_0' ? (n / 32) * 34 : (n / 32) * 18;
}

/** The types quantized in blocks of 32 along a row. */
export const blockQuantized = (type: GgmlType): boolean => type === 'q8_0' || type === 'q4_0';

// ggml computes its reference quantizations in float32: every step is rounded to float32 here too,
// so the bytes are ggml's (held to llama.cpp's gguf-py in the GGUF tests).
const f = Math.fround;

/** ggml's reference q8_0: per block of 32, d = max|x| / 127 (stored as f16), q = round(x / d), halves away from zero. */
export function quantizeQ8_0(x: Float32Array): Buffer {
  const out = Buffer.alloc(typeBytes('q8_0', x.length));
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    out.writeUInt16LE(toHalf(d), b * 34);
    for (let i = 0; i < 32; i++) {
      const v = f(x[b * 32 + i]! * id);
      out.writeInt8(Math.sign(v) * Math.round(Math.abs(v)), b * 34 + 2 + i); // C's roundf: halves away from zero
    }
  }
  return out;
}

/**
 * ggml's reference q4_0: per block of 32, d = (the value of largest magnitude) / -8 (stored as
 * f16), q = min(15, trunc(x / d + 8.5)); the first 16 values in the low nibbles, the last 16 in the high.
 */
export function quantizeQ4_0(x: Float32Array): Buffer {
  const out = Buffer.alloc(typeBytes('q4_0', x.length));
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let i = 0; i < 32; i++) {
      const v = x[b * 32 + i]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    out.writeUInt16LE(toHalf(d), b * 18);
    const q = (v: number) => Math.min(15, Math.trunc(f(f(v * id) + 8.5)));
    for (let i = 0; i < 16; i++) out.writeUInt8(q(x[b * 32 + i]!) | (q(x[b * 32 + 16 + i]!) << 4), b * 18 + 2 + i);
  }
  return out;
}

function tensorBytes(t: GgufTensor): Buffer {
  if (t.type === 'f32') return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.type === 'q8_0') return quantizeQ8_0(t.data);
  if (t.type === 'q4_0') return quantizeQ4_0(t.data);
  const out = Buffer.alloc(t.data.length * 2);
  for (let i = 0; i < t.data.length; i++) out.writeUInt16LE(toHalf(t.data[i]!), i * 2);
  return out;
}

/**
 * Writes a GGUF file, tensors produced one at a time by `tensors` (a base model's weights need
 * not all be in memory). Written beside `file` and renamed into place when whole.
 */
export function writeGguf(file: string, metadata: Record<string, MetaValue>, infos: readonly Omit<GgufTensor, 'data'>[], tensor: (name: string) => Float32Array, stop?: () => boolean): void {
  const head = new Bytes();
  head.push(Buffer.from('GGUF', 'ascii'));
  head.u32(3);
  head.u64(infos.length);
  const entries = Object.entries({ 'general.alignment': { u32: ALIGNMENT }, ...metadata });
  head.u64(entries.length);
  for (const [k, v] of entries) {
    head.str(k);
    writeValue(head, v);
  }
  let offset = 0;
  for (const t of infos) {
    head.str(t.name);
    head.u32(t.shape.length);
    [...t.shape].reverse().forEach((d) => head.u64(d));
    head.u32(GGML_TYPE[t.type]);
    head.u64(offset);
    if (blockQuantized(t.type) && t.shape[t.shape.length - 1]! % 32 !== 0) throw new Error(`${t.name}: rows of ${t.shape[t.shape.length - 1]} values cannot be ${t.type} (blocks of 32)`);
    const n = typeBytes(t.type, t.shape.reduce((a, b) => a * b, 1));
    offset += n + padding(n);
  }
  head.pad();
  // The shared temp name: an export killed before its rename leaves a file the next export removes.
  const tmp = tempPathFor(file);
  const fd = openSync(tmp, 'w');
  try {
    try {
      writeSync(fd, head.take());
      for (const t of infos) {
        // Asked between tensors: a cancelled export ends here, and its temporary file goes below.
        if (stop?.()) throw new Cancelled(`writing ${file}`);
        const data = tensor(t.name);
        const n = t.shape.reduce((x, y) => x * y, 1);
        if (data.length !== n) throw new Error(`${t.name}: ${data.length} values for shape [${t.shape}]`);
        const bytes = tensorBytes({ ...t, data });
        writeSync(fd, bytes);
        writeSync(fd, Buffer.alloc(padding(bytes.length)));
      }
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
