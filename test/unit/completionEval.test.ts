import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidatePositions, samplePositions, scoreCompletions, formatCompletionTable } from '../../src/core/eval/completions';
import { seededRandom as seeded } from '../../src/core/inference/sampling';

const py = 'import os\n\n\ndef load(path, limit=3):\n    with open(path) as handle:\n        return handle.read()\n';

test('candidate positions: typed indentation at line starts, a word boundary mid-line, never an empty rest', () => {
  const ps = candidatePositions('a.py', py);
  const starts = ps.filter((p) => p.kind === 'line-start');
  // The first line is not a completion position (nothing before it); blank lines are none either.
  assert.deepEqual(starts.map((p) => p.target), ['def load(path, limit=3):', 'with open(path) as handle:', 'return handle.read()']);
  for (const p of ps) {
    assert.equal(py.slice(p.offset, p.offset + p.target.length), p.target, 'the target is the text at the offset');
    assert.ok(p.target.trim().length > 0);
  }
  const mid = ps.filter((p) => p.kind === 'mid-line');
  assert.ok(mid.length >= 3);
  for (const p of mid) assert.match(py[p.offset - 1]!, /\W/, 'mid-line cursors sit after a word boundary');
});

test('sampling is stratified, distinct and fixed by the seed', () => {
  const files = [{ relPath: 'a.py', text: py }, { relPath: 'b.py', text: py.replace(/load/g, 'save') }];
  const a = samplePositions(files, 6, seeded(7));
  const b = samplePositions(files, 6, seeded(7));
  assert.deepEqual(a, b);
  assert.equal(a.filter((p) => p.kind === 'line-start').length, 3);
  assert.equal(a.filter((p) => p.kind === 'mid-line').length, 3);
  assert.equal(new Set(a.map((p) => `${p.relPath}:${p.offset}`)).size, 6);
  assert.notDeepEqual(samplePositions(files, 6, seeded(8)), a, 'another seed, other positions');
  assert.equal(samplePositions(files, 100, seeded(1)).length, candidatePositions('a.py', py).length * 2, 'never more than there are');
});

test('scores: exact match ignores trailing spaces, edit similarity and accepted characters are per position', () => {
  const s = scoreCompletions([
    { predicted: 'return x  ', target: 'return x', ms: 10, own: true },
    { predicted: 'return y', target: 'return x', ms: 30 },
    { predicted: '', target: 'abcd', ms: 20 },
  ]);
  assert.equal(s.n, 3);
  assert.equal(s.exact, 1 / 3);
  assert.ok(Math.abs(s.editSimilarity - (1 + 7 / 8 + 0) / 3) < 1e-9);
  assert.equal(s.acceptedChars, (8 + 7 + 0) / 3);
  assert.equal(s.p50Ms, 20);
  assert.equal(s.p95Ms, 30);
  assert.equal(s.servedByOwnExpert, 1 / 3);
  const table = formatCompletionTable({ seed: 0, positionsPerDomain: 3, maxNewTokens: 8, columns: ['base', 'label'], rows: { python: { base: s, label: s } } });
  assert.match(table, /label \(own expert\)/);
  assert.match(formatCompletionTable({ seed: 0, positionsPerDomain: 3, maxNewTokens: 8, columns: ['label', 'label-prefix-only'], rows: { python: { label: s, 'label-prefix-only': s } } }), /label, prefix only/);
  assert.match(table, /^python\s+33% 0\.63 5\.0\/7/m);
  assert.match(table, /own 33% · 20 · 20\/30/);
});
