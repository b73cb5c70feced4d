import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countSafetensorsElements, parseSafetensors, readSafetensors, tensorToFloat32, writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { tempWorkspace } from '../helpers/tmp';

function build(header: object, data: Uint8Array): Uint8Array {
  const h = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test('F32 round trip through our writer and reader', () => {
  const ws = tempWorkspace();
  try {
    const file = join(ws.root, 'a.safetensors');
    const a = Float32Array.from([1, -2.5, 3.25, 0, 1e-7, 42]);
    writeSafetensorsF32(file, new Map([['x.weight', { shape: [2, 3], data: a }], ['b', { shape: [1], data: Float32Array.from([7]) }]]), { format: 'pt' });
    const st = readSafetensors(file);
    assert.deepEqual(st.tensors.get('x.weight')?.shape, [2, 3]);
    assert.deepEqual(Array.from(tensorToFloat32(st, 'x.weight')), Array.from(a));
    assert.equal(st.metadata['format'], 'pt');
    assert.equal(countSafetensorsElements(file), 7, 'element count from the header alone');
    const headerLen = Number(readFileSync(file).readBigUInt64LE(0));
    assert.equal((8 + headerLen) % 8, 0, 'data section is 8-byte aligned');
  } finally {
    ws.cleanup();
  }
});

test('F16 and BF16 convert to F32', () => {
  // 1.0, -2.0, 0.5 in F16: 0x3c00, 0xc000, 0x3800; in BF16: 0x3f80, 0xc000, 0x3f00
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800]).buffer);
  const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc000, 0x3f00]).buffer);
  const data = new Uint8Array([...f16, ...bf16]);
  const st = parseSafetensors('mem', build({ h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, b: { dtype: 'BF16', shape: [3], data_offsets: [6, 12] } }, data));
  assert.deepEqual(Array.from(tensorToFloat32(st, 'h')), [1, -2, 0.5]);
  assert.deepEqual(Array.from(tensorToFloat32(st, 'b')), [1, -2, 0.5]);
});

test('bad files are rejected with the file name and the problem', () => {
  const ws = tempWorkspace();
  try {
    const file = join(ws.root, 'bad.safetensors');
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(3), /shorter than the 8-byte header/],
      [(() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /exceeds the .* cap/],
      [(() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 100n, true); return b; })(), /runs past the end/],
      [build({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /outside the 8-byte data section/],
      [build({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /needs 12/],
      [build({ t: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unsupported dtype/],
      [build({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)), /invalid shape/],
      [build([1, 2] as unknown as object, new Uint8Array(0)), /not a JSON object/],
    ];
    for (const [bytes, re] of cases) {
      writeFileSync(file, bytes);
      assert.throws(() => readSafetensors(file), (e: Error) => e.message.startsWith(file) && re.test(e.message), `expected ${re}`);
    }
    assert.throws(() => readSafetensors(join(ws.root, 'missing.safetensors')), /missing/);
  } finally {
    ws.cleanup();
  }
});

test('as the reference library does: overlapping, gapped or trailing tensor data and non-string metadata are refused', () => {
  const file = (header: Record<string, unknown>, dataBytes: number) => {
    const json = Buffer.from(JSON.stringify(header));
    const buf = Buffer.alloc(8 + json.length + dataBytes);
    buf.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(buf, 8);
    return buf;
  };
  const t = (b: number, e: number) => ({ dtype: 'F32', shape: [(e - b) / 4], data_offsets: [b, e] });
  assert.equal(parseSafetensors('ok.st', file({ a: t(0, 8), b: t(8, 16) }, 16)).tensors.size, 2);
  assert.throws(() => parseSafetensors('x.st', file({ a: t(0, 8), b: t(4, 12) }, 12)), /x\.st: invalid safetensors: tensor "b" starts at byte 4 .* overlap or leave a gap/);
  assert.throws(() => parseSafetensors('x.st', file({ a: t(0, 8), b: t(12, 16) }, 16)), /overlap or leave a gap/);
  assert.throws(() => parseSafetensors('x.st', file({ a: t(0, 8) }, 16)), /cover 8 bytes but the data section holds 16/);
  assert.throws(() => parseSafetensors('x.st', file({ __metadata__: { format: 1 }, a: t(0, 8) }, 8)), /__metadata__ must map strings to strings/);
});
