// `npm run demo`: the whole path on the embedded base model, on a demo workspace assembled from
// text every machine has after `npm ci` (TypeScript declarations, package READMEs, Python's
// standard library). It works in a fresh temporary folder and never touches your files.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const steps = process.env.MOA_DEMO_STEPS ?? '150';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`\ndemo: "${[basename(cmd), ...args].join(' ')}" failed`);
    process.exit(r.status ?? 1);
  }
}

run(process.execPath, ['scripts/python-env.mjs']);
run(process.execPath, ['scripts/build.mjs', '--production']);

const ws = mkdtempSync(join(tmpdir(), 'moa-demo-'));
function take(files, dest, maxFiles) {
  mkdirSync(join(ws, dest), { recursive: true });
  let n = 0;
  for (const f of files) {
    if (n >= maxFiles) break;
    if (!existsSync(f) || statSync(f).size > 200_000 || statSync(f).size < 500) continue;
    copyFileSync(f, join(ws, dest, `${n}-${basename(f)}`));
    n++;
  }
  return n;
}
const tsLib = join(root, 'node_modules', 'typescript', 'lib');
const dts = readdirSync(tsLib).filter((n) => /^lib\.es20\d\d\..*\.d\.ts$/.test(n)).sort().map((n) => join(tsLib, n));
const readmes = readdirSync(join(root, 'node_modules'))
  .filter((n) => !n.startsWith('.') && !n.startsWith('@'))
  .sort()
  .map((n) => join(root, 'node_modules', n, 'README.md'));
const stdlib = spawnSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' }).stdout.trim();
const pyFiles = ['json', 'email', 'http', 'logging', 'urllib', 'importlib']
  .flatMap((pkg) => (existsSync(join(stdlib, pkg)) ? readdirSync(join(stdlib, pkg)).filter((n) => n.endsWith('.py')).sort().map((n) => join(stdlib, pkg, n)) : []));
const counts = { typescript: take(dts, 'types', 30), markdown: take(readmes, 'docs', 30), python: take(pyFiles, 'pysrc', 30) };
console.log(`\ndemo workspace: ${ws}`);
console.log(`  ${counts.typescript} TypeScript declaration files, ${counts.markdown} READMEs, ${counts.python} Python modules\n`);

const moa = (args) => run(process.execPath, [join(root, 'dist', 'cli.js'), ...args, '--workspace', ws], { cwd: ws });
console.log('$ moa init');
moa(['init']);
console.log('\n$ moa data');
moa(['data']);
console.log(`\n$ moa train --steps ${steps}`);
moa(['train', '--steps', steps]);
console.log('\n$ moa experts list');
moa(['experts', 'list']);
console.log('\n$ moa eval');
moa(['eval']);

for (const dir of ['pysrc', 'types', 'docs']) {
  const file = join(ws, dir, readdirSync(join(ws, dir)).sort()[0]);
  const lines = readFileSync(file, 'utf8').split('\n');
  const line = Math.min(lines.length, 12);
  console.log(`\n$ moa route ${file.slice(ws.length + 1)}`);
  moa(['route', file]);
  console.log(`\n$ moa complete ${file.slice(ws.length + 1)} --line ${line} --col 1`);
  console.log('--- prompt ends with:');
  console.log(lines.slice(Math.max(0, line - 4), line - 1).join('\n'));
  console.log('--- completion:');
  moa(['complete', file, '--line', String(line), '--col', '1', '--max-tokens', '64']);
}
console.log(`\ndemo workspace kept at ${ws}`);
