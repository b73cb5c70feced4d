import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeByLabel } from '../../src/core/routing/label';
import { validateConfig } from '../../src/core/config/validate';

const config = (mode = 'label') =>
  validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', languages: ['markdown'] }], routing: { mode } }).config!;

test('label routing sends a file to its domain expert', () => {
  const r = routeByLabel(config(), 'src/a.py', new Set(['python', 'docs']));
  assert.equal(r.domain, 'python');
  assert.deepEqual(r.experts, [{ name: 'python', weight: 1 }]);
});

test('no domain, no expert, or routing off: base model, with the reason', () => {
  assert.deepEqual(routeByLabel(config(), 'main.go', new Set(['python'])).experts, []);
  const missing = routeByLabel(config(), 'README.md', new Set(['python']));
  assert.equal(missing.domain, 'docs');
  assert.match(missing.reason, /no attached expert/);
  assert.match(routeByLabel(config('off'), 'a.py', new Set(['python'])).reason, /off/);
  assert.match(routeByLabel(config('learned'), 'a.py', new Set(['python'])).reason, /no usable router/);
});

test('pinned routing serves every file from the pinned expert, else falls back to labels', () => {
  const r = routeByLabel(config('pinned'), 'README.md', new Set(['python', 'docs']), undefined, 'python');
  assert.deepEqual(r.experts, [{ name: 'python', weight: 1 }]);
  assert.match(r.reason, /pinned expert python/);
  const none = routeByLabel(config('pinned'), 'README.md', new Set(['docs']), undefined, null);
  assert.equal(none.experts[0]?.name, 'docs');
  assert.match(none.reason, /nothing pinned/);
});
