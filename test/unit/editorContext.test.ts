import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { windowsWithContext } from '../../src/core/eval/editorContext';
import { evenWindows } from '../../src/core/eval/windows';
import { tempWorkspace } from '../helpers/tmp';

test('each window gets the text of its own file before it, never across the file start, and is the same window evenWindows takes', () => {
  const ws = tempWorkspace();
  try {
    const BOS = 256;
    // Three files: BOS then 40, 100 and 60 tokens (ids < 256).
    const files = [40, 100, 60].map((n, f) => [BOS, ...Array.from({ length: n }, (_, i) => (f * 50 + i) % 250)]);
    const shard = join(ws.root, 'val.bin');
    const tokens = Uint32Array.from(files.flat());
    writeFileSync(shard, Buffer.from(tokens.buffer));
    const plain = evenWindows(shard, 16, 5);
    const withCtx = windowsWithContext(shard, 16, 5, 30, BOS);
    assert.equal(withCtx.length, plain.length);
    withCtx.forEach(({ row, ctx }, i) => {
      assert.deepEqual(row.subarray(ctx), plain[i], `window ${i} is the same`);
      assert.ok(ctx <= 30);
      assert.ok(!row.subarray(1, ctx + 1).includes(BOS), `window ${i}: the context stays in one file (a BOS only at its start)`);
    });
    assert.ok(withCtx.some((w) => w.ctx === 30), 'a window deep in a file gets the whole context');
    assert.ok(withCtx.some((w) => w.ctx > 0 && w.ctx < 30 && w.row[0] === BOS), 'a window near its file start gets the file from its BOS');
    assert.deepEqual(windowsWithContext(shard, 16, 5, 30, null).map((w) => w.ctx), plain.map((_, i) => Math.min(30, i * Math.floor((tokens.length - 16) / 4))), 'no BOS known: the context only stops at the shard start');
  } finally {
    ws.cleanup();
  }
});
