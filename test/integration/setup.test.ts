// `moa setup` (issue #19), all real: a virtual environment made from the system Python, the
// trainer's requirements installed by pip from whatever index pip is configured with (here, the
// machine's local package stores), then the trainer's own doctor run with it. And an interpreter
// without torch: the trainer's error points at the setup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/tmp';

const cli = join(repoRoot(), 'dist', 'cli.js');

test('moa setup makes a working trainer environment outside any workspace, and a second run has nothing to do', { timeout: 900_000 }, () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'moa-setup-')), 'env');
  try {
    const first = spawnSync(process.execPath, [cli, 'setup', '--venv', dir], { encoding: 'utf8', timeout: 900_000 });
    assert.equal(first.status, 0, first.stderr.slice(-3000));
    assert.match(first.stderr, /creating .* with \S+ \(Python 3\.\d+\)/);
    assert.match(first.stdout, /torch \S+: a (CPU|CUDA \S+) build of torch/);
    assert.match(first.stdout, /python: .*env\/bin\/python \(explicit\)\ntorch: /, 'then moa doctor ran the trainer with it');
    const again = spawnSync(process.execPath, [cli, 'setup', '--venv', dir, '--json'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(again.status, 0, again.stderr);
    const r = JSON.parse(again.stdout) as { reinstalled: boolean; python: string; verdict: string };
    assert.equal(r.reinstalled, false, 'the requirements did not change: nothing reinstalled');
    assert.ok(existsSync(r.python));
    const conflicting = spawnSync(process.execPath, [cli, 'setup', '--cpu', '--cuda'], { encoding: 'utf8' });
    assert.equal(conflicting.status, 2);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('an interpreter without torch: training fails with a hint to run the setup', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'moa-bare-')), 'env');
  try {
    assert.equal(spawnSync('python3', ['-m', 'venv', '--without-pip', dir]).status, 0);
    const r = spawnSync(process.execPath, [cli, 'doctor', '--python', join(dir, 'bin', 'python')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /PyTorch is not importable by .*\(run "moa setup"/);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
