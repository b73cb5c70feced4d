import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { assembleDemoWorkspace, demoSources } from '../../src/cli/demoWorkspace';
import { MoaError } from '../../src/core/util/errors';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const root = repoRoot();
const python = existsSync(join(root, '.venv', 'bin', 'python')) ? join(root, '.venv', 'bin', 'python') : 'python3';

test('the demo workspace: four domains from text on this machine, the same files every time', () => {
  const a = tempWorkspace();
  const b = tempWorkspace();
  try {
    const first = assembleDemoWorkspace(a.root, demoSources(root, python));
    assert.deepEqual(first.map((d) => d.domain), ['python', 'typescript', 'javascript', 'markdown']);
    for (const d of first) assert.ok(d.copied.length >= 10, `${d.domain}: ${d.copied.length} files`);
    const second = assembleDemoWorkspace(b.root, demoSources(root, python));
    for (const d of first) assert.deepEqual(readdirSync(join(b.root, d.folder)), readdirSync(join(a.root, d.folder)), `${d.domain}: a fixed selection`);
    assert.equal(second.length, 4);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('a source with too few files stops the demo with what to do', () => {
  const ws = tempWorkspace();
  try {
    assert.throws(() => assembleDemoWorkspace(ws.root, [{ domain: 'javascript', folder: 'js', describe: 'nothing', files: ['/nonexistent/a.js'] }]), (e) => e instanceof MoaError && /0 file\(s\) for the javascript domain/.test(e.message) && /npm ci/.test(e.hint ?? ''));
  } finally {
    ws.cleanup();
  }
});
