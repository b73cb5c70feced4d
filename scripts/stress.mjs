// `npm run test:stress`: the long runs behind `npm test`'s representative subset: kill -9 at every
// rename of a training run (not a spread of 20) and 100,000 fuzz cases per parser (not 10,000).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
for (const [cmd, args] of [[process.execPath, ['scripts/python-env.mjs', '--test']], [process.execPath, ['scripts/build.mjs']]]) {
  if (spawnSync(cmd, args, { stdio: 'inherit', cwd: root }).status !== 0) {
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}
const dir = join(root, 'out', 'test', 'reliability');
const files = readdirSync(dir).filter((n) => n.endsWith('.test.js')).map((n) => join(dir, n));
const env = { ...process.env, MOA_FAULT_POINTS: 'all', MOA_FUZZ_RUNS: process.env.MOA_FUZZ_RUNS ?? '100000' };
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (b) => (process.stdout.write(b), (out = (out + b).slice(-100_000))));
child.on('close', (code) => {
  const n = (re) => Number([...out.matchAll(re)].pop()?.[1] ?? 0);
  const passed = n(/ℹ pass (\d+)/g);
  const failed = n(/ℹ fail (\d+)/g) + (code !== 0 && !/ℹ fail [1-9]/.test(out) ? 1 : 0);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
});
