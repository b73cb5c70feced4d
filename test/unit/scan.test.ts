import { test } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { scanWorkspace, type SkipReason } from '../../src/core/data/scan';
import { tempWorkspace } from '../helpers/tmp';

test('scan honours nested .gitignore, default excludes, size cap, binaries and symlinks', () => {
  const ws = tempWorkspace({
    '.gitignore': 'secret.txt\nlogs/\n',
    'a.py': 'print(1)\n',
    'secret.txt': 'x',
    'logs/l.md': '# log',
    'pkg/.gitignore': '*.gen.py\n',
    'pkg/keep.py': 'x = 1\n',
    'pkg/skip.gen.py': 'x = 2\n',
    'node_modules/m/index.js': 'module.exports = 1',
    '.moa/moa.json': '{}',
    'big.md': 'x'.repeat(5000),
    'img.png': new Uint8Array([137, 80, 78, 71, 0, 0, 0, 1]),
  });
  try {
    symlinkSync(ws.root, join(ws.root, 'loop'));
    const skipped: Record<string, SkipReason> = {};
    const files = [...scanWorkspace(ws.root, { maxFileBytes: 1000, onSkip: (p, r) => (skipped[p] = r) })].map((f) => f.relPath);
    assert.deepEqual(files, ['a.py', 'pkg/keep.py']);
    assert.equal(skipped['secret.txt'], 'gitignored');
    assert.equal(skipped['logs'], 'gitignored');
    assert.equal(skipped['pkg/skip.gen.py'], 'gitignored');
    assert.equal(skipped['node_modules'], 'excluded');
    assert.equal(skipped['.moa'], 'excluded');
    assert.equal(skipped['big.md'], 'too-large');
    assert.equal(skipped['img.png'], 'binary');
    assert.equal(skipped['loop'], 'symlink');
  } finally {
    ws.cleanup();
  }
});
