// `npm test`: prepares the Python environment, builds, type-checks, then runs the Python tests
// (pytest) and the TypeScript tests (node's test runner), and closes with one combined line.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const py = process.platform === 'win32' ? join(root, '.venv', 'Scripts', 'python.exe') : join(root, '.venv', 'bin', 'python');

function step(name, cmd, args) {
  console.log(`\n== ${name}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    console.error(`\n${name} failed`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

/** Runs a test runner, echoing its output, and returns the output for counting. */
function runTests(name, cmd, args, env = {}) {
  console.log(`\n== ${name}`);
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (b) => {
      out = (out + b.toString()).slice(-200_000);
    };
    child.stdout.on('data', (b) => (process.stdout.write(b), keep(b)));
    child.stderr.on('data', (b) => (process.stderr.write(b), keep(b)));
    child.on('close', (code) => done({ code, out }));
  });
}

function listTests(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? listTests(p) : n.endsWith('.test.js') ? [p] : [];
  });
}

const count = (re, s) => {
  const m = [...s.matchAll(re)].pop();
  return m ? Number(m[1]) : 0;
};

step('python environment', process.execPath, ['scripts/python-env.mjs', '--test']);
step('end-to-end tools (code-server, chromium)', process.execPath, ['scripts/e2e-tools.mjs']);
step('llama.cpp (node-llama-cpp, CPU binary)', process.execPath, ['scripts/llama-cpp.mjs']);
step('build', process.execPath, ['scripts/build.mjs']);
step('typecheck', process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.', '--noEmit']);

const pyRes = await runTests('python tests (pytest)', py, ['-m', 'pytest', '-q', '-rs', 'trainer/tests'], { PYTHONPATH: join(root, 'trainer') });
const pyTail = pyRes.out.split('\n').filter((l) => /\d+ (passed|failed|error)/.test(l)).pop() ?? '';
const pyPassed = count(/(\d+) passed/g, pyTail);
const pyFailed = count(/(\d+) failed/g, pyTail) + count(/(\d+) errors?/g, pyTail) + (pyRes.code !== 0 && !pyTail ? 1 : 0);

const files = listTests(join(root, 'out', 'test'));
const nodeRes = await runTests('typescript tests (node --test)', process.execPath, // One file at a time: the e2e test repackages dist/ (vsce prepublish) which the integration test runs.
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files]);
const nodePassed = count(/ℹ pass (\d+)/g, nodeRes.out);
const nodeFailed = count(/ℹ fail (\d+)/g, nodeRes.out) + (nodeRes.code !== 0 && !/ℹ fail/.test(nodeRes.out) ? 1 : 0);

const pySkipped = count(/(\d+) skipped/g, pyTail);
const nodeSkipped = count(/ℹ skipped (\d+)/g, nodeRes.out);
const passed = pyPassed + nodePassed;
const failed = pyFailed + nodeFailed + (pyRes.code !== 0 && pyFailed === 0 ? 1 : 0) + (nodeRes.code !== 0 && nodeFailed === 0 ? 1 : 0);
console.log(`\npython: ${pyPassed} passed, ${pyFailed} failed, ${pySkipped} skipped; typescript: ${nodePassed} passed, ${nodeFailed} failed, ${nodeSkipped} skipped`);
console.log(`total: ${passed} passed, ${failed} failed, ${pySkipped + nodeSkipped} skipped`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
