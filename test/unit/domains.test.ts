import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDomains } from '../../src/core/domains/classify';
import { suggestDomains } from '../../src/core/domains/suggest';

test('suggestDomains builds one domain per language with enough content, largest first', () => {
  const files = [
    { relPath: 'src/a.py', size: 3000 },
    { relPath: 'src/b.py', size: 3000 },
    { relPath: 'docs/x.md', size: 1500 },
    { relPath: 'docs/y.markdown', size: 1500 },
    { relPath: 'web/c.ts', size: 900 },
    { relPath: 'web/d.tsx', size: 900 },
    { relPath: 'lone.sql', size: 99999 },
    { relPath: 'package.json', size: 99999 },
  ];
  const d = suggestDomains(files, { minFiles: 2, minBytes: 1000 });
  assert.deepEqual(d.map((x) => x.name), ['python', 'markdown', 'typescript']);
  assert.deepEqual(d[2]!.languages, ['typescript', 'typescriptreact']);
  assert.ok(d[1]!.include[0]!.includes('markdown') && d[1]!.include[0]!.includes('md'));
});

test('a file belongs to the first matching domain; excludes win', () => {
  const m = compileDomains([
    { name: 'tests', include: ['tests/**'], exclude: ['tests/fixtures/**'], languages: [] },
    { name: 'python', include: ['**/*.py'], exclude: [], languages: [] },
    { name: 'docs', include: [], exclude: [], languages: ['markdown'] },
  ]);
  assert.equal(m.domainOf('tests/test_a.py'), 'tests');
  assert.equal(m.domainOf('tests/fixtures/f.py'), 'python');
  assert.equal(m.domainOf('src/mod.py'), 'python');
  assert.equal(m.domainOf('README.md'), 'docs');
  assert.equal(m.domainOf('notes.txt', 'markdown'), 'docs');
  assert.equal(m.domainOf('main.go'), undefined);
});
