import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDatasets, readManifest } from '../../src/core/data/shards';
import { chooseValidation } from '../../src/core/data/split';
import { validateConfig } from '../../src/core/config/validate';
import { workspaceLayout } from '../../src/core/paths';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';
import { tempWorkspace } from '../helpers/tmp';

function readU32(file: string): number[] {
  const b = readFileSync(file);
  return Array.from(new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4));
}

test('shards hold each file as BOS, bytes, EOS, split by file, with stats and a fingerprint', () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 12; i++) files[`src/m${i}.py`] = `def f${i}():\n    return ${i}  # é\n`;
  files['docs/a.md'] = '# A\n';
  const ws = tempWorkspace(files);
  try {
    const layout = workspaceLayout(ws.root);
    const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', include: ['**/*.md'] }] }).config!;
    const tok = new ByteTokenizer();
    const m = buildDatasets(layout, config, tok);
    const py = m.domains.find((d) => d.domain === 'python')!;
    assert.equal(py.files, 12);
    assert.ok(py.valFiles >= 1 && py.trainFiles >= 1 && py.valFiles + py.trainFiles === 12);
    const totalBytes = Object.entries(files).filter(([p]) => p.endsWith('.py')).reduce((n, [, c]) => n + Buffer.byteLength(c), 0);
    assert.equal(py.bytes, totalBytes);
    assert.equal(py.trainTokens + py.valTokens, totalBytes + 2 * 12);
    const train = readU32(py.trainPath);
    assert.equal(train.length, py.trainTokens);
    assert.equal(train[0], 256);
    assert.equal(train[train.length - 1], 257);
    assert.equal(train.filter((t) => t === 256).length, py.trainFiles);
    const docs = m.domains.find((d) => d.domain === 'docs')!;
    assert.equal(docs.valFiles, 0, 'a one-file domain keeps its file for training');
    assert.deepEqual(readU32(docs.trainPath), [256, ...Buffer.from('# A\n'), 257]);
    assert.equal(readManifest(layout)?.domains.length, 2);
    const meta = JSON.parse(readFileSync(join(layout.dataDir, 'python', 'meta.json'), 'utf8'));
    assert.equal(meta.dtype, 'uint32');
    assert.equal(meta.fingerprint, py.fingerprint);

    const again = buildDatasets(layout, config, tok);
    assert.equal(again.domains[0]!.fingerprint, py.fingerprint, 'same inputs, same fingerprint');
    writeFileSync(join(ws.root, 'src/m3.py'), 'changed = True\n');
    const changed = buildDatasets(layout, config, tok);
    assert.notEqual(changed.domains[0]!.fingerprint, py.fingerprint);
    assert.equal(changed.domains[1]!.fingerprint, docs.fingerprint, 'an untouched domain keeps its fingerprint');
  } finally {
    ws.cleanup();
  }
});

test('validation split is deterministic and never takes every file', () => {
  const paths = Array.from({ length: 50 }, (_, i) => `f${i}.py`);
  const a = chooseValidation(paths, 0.1);
  assert.deepEqual([...chooseValidation([...paths].reverse(), 0.1)].sort(), [...a].sort());
  assert.ok(a.size > 0 && a.size < 50);
  assert.equal(chooseValidation(['only.py'], 0.5).size, 0);
  assert.equal(chooseValidation(['a', 'b'], 0.9).size, 1);
});
