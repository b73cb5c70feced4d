// `npm run bench [-- --quick] [-- --only a,b]`: every benchmark of the project in one run, one table
// (--only: those benches, their rows replaced in the recorded table).
// Each bench prints its own lines and hands its headline figures to bench/core/figures.ts (or
// bench/common.py's record_figure), which append them to one JSON-lines file; this script adds the
// machine (cores, CPU, load average at start and end) and writes bench/results/latest.json and
// latest.md. --quick runs every bench at its smallest size (what CI runs, so no bench can rot) and
// writes bench/results/quick.* instead, leaving the recorded full run alone. A bench that fails
// fails the run; a target not met does not (that is a figure, not a test).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const py = process.platform === 'win32' ? join(root, '.venv', 'Scripts', 'python.exe') : join(root, '.venv', 'bin', 'python');
const quick = process.argv.includes('--quick');
const onlyArg = process.argv.find((a) => a.startsWith('--only='))?.slice(7) ?? (process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined);

/** name: what --only takes and the figures' `bench`; ts: an esbuild entry; py: a script with its args. */
const BENCHES = [
  { name: 'core', ts: 'bench/core/store-and-data.bench.ts' },
  { name: 'data', ts: 'bench/core/incremental-data.bench.ts' },
  { name: 'inference', ts: 'bench/core/inference.bench.ts' },
  { name: 'transformers.js', ts: 'bench/core/decode-vs-transformersjs.bench.ts' },
  { name: 'llama.cpp', ts: 'bench/core/vs-llama-cpp.bench.ts', needs: 'llama' },
  { name: 'quantized', ts: 'bench/core/quantized.bench.ts', needs: 'llama' },
  { name: 'trainer-concurrent', py: ['bench/cpu_concurrent.py'] },
  { name: 'trainer-vs-peft', py: ['bench/cpu_vs_peft.py'] },
  { name: 'fim', py: ['bench/fim_infill.py'] },
  { name: 'gpu', py: ['bench/gpu_bench.py'], gpu: true },
  { name: 'editor', ts: 'bench/core/editor.bench.ts', needs: 'e2e' },
];

const only = onlyArg ? new Set(onlyArg.split(',')) : undefined;
const chosen = BENCHES.filter((b) => !only || only.has(b.name));
if (chosen.length === 0) {
  console.error(`--only ${onlyArg}: no such bench (${[...new Set(BENCHES.map((b) => b.name))].join(', ')})`);
  process.exit(2);
}

function prepare(name, args) {
  console.log(`\n== ${name}`);
  if (spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root }).status !== 0) {
    console.error(`bench: ${name} failed`);
    process.exit(1);
  }
}
prepare('python environment', ['scripts/python-env.mjs', '--test']);
prepare('build', ['scripts/build.mjs']);
if (chosen.some((b) => b.needs === 'llama')) prepare('llama.cpp (node-llama-cpp, CPU binary)', ['scripts/llama-cpp.mjs']);
if (chosen.some((b) => b.needs === 'e2e')) prepare('end-to-end tools (code-server, chromium)', ['scripts/e2e-tools.mjs']);

// Asked only when the GPU bench is chosen: importing torch takes seconds.
const hasCuda = chosen.some((b) => b.gpu) ? spawnSync(py, ['-c', 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)']).status === 0 : undefined;
const tmp = mkdtempSync(join(tmpdir(), 'moa-bench-run-'));
const figuresFile = join(tmp, 'figures.jsonl');
writeFileSync(figuresFile, '');
const machine = {
  date: new Date().toISOString(),
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  cuda: hasCuda,
  loadAverageStart: loadavg()[0],
  loadAverageEnd: 0,
  quick,
};
const runs = [];
for (const b of chosen) {
  const label = b.ts ?? b.py.join(' ');
  console.log(`\n== bench ${b.name}: ${label}${quick ? ' (quick)' : ''}`);
  const env = { ...process.env, MOA_BENCH_FIGURES: figuresFile };
  const t0 = performance.now();
  const started = { date: new Date().toISOString(), loadAverageStart: loadavg()[0] };
  let cmd;
  let args;
  if (b.ts) {
    const out = join(root, 'out', 'bench', b.ts.split('/').pop().replace(/\.ts$/, '.js'));
    await build({ entryPoints: [join(root, b.ts)], bundle: true, platform: 'node', target: 'node20', outfile: out, external: ['onnxruntime-node', 'playwright-core', 'node-llama-cpp'], logLevel: 'warning', loader: { '.json': 'json' } });
    [cmd, args] = [process.execPath, [out, ...(quick ? ['--quick'] : [])]];
  } else {
    if (b.gpu && !hasCuda && !quick) {
      console.log('skipped: no CUDA device here (the GPU bench runs where torch.cuda.is_available(); --quick runs its CPU smoke)');
      runs.push({ bench: b.name, script: label, ok: true, skipped: 'no CUDA device', seconds: 0, ...started });
      continue;
    }
    const extra = b.gpu ? (hasCuda && !quick ? [] : ['--smoke']) : quick ? ['--quick'] : [];
    [cmd, args] = [py, [...b.py, ...extra]];
    env.OMP_NUM_THREADS = '1';
  }
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
  const seconds = (performance.now() - t0) / 1000;
  runs.push({ bench: b.name, script: label, ok: r.status === 0, seconds: Math.round(seconds * 10) / 10, ...started, loadAverageEnd: loadavg()[0], ...(r.status === 0 ? {} : { error: `exit ${r.status ?? r.signal}` }) });
}
machine.loadAverageEnd = loadavg()[0];
const figures = readFileSync(figuresFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
rmSync(tmp, { recursive: true, force: true });

// A bench that ran but recorded nothing has rotted as surely as one that failed.
for (const run of runs) {
  if (run.ok && !run.skipped && !figures.some((f) => f.bench === run.bench)) Object.assign(run, { ok: false, error: 'recorded no figure' });
}

const thisRun = [...runs]; // what the closing count is about; rows kept from earlier runs are not

// `--only` updates its benches' rows in the recorded results and keeps the others' (each run row
// says when it ran and under what load).
const outDir = join(root, 'bench', 'results');
const base = join(outDir, quick ? 'quick' : 'latest');
if (only && existsSync(`${base}.json`)) {
  const before = JSON.parse(readFileSync(`${base}.json`, 'utf8'));
  const ran = new Set(runs.map((r) => r.bench));
  const whenBefore = { date: before.machine.date, loadAverageStart: before.machine.loadAverageStart, loadAverageEnd: before.machine.loadAverageEnd };
  runs.unshift(...before.runs.filter((r) => !ran.has(r.bench)).map((r) => ({ ...whenBefore, ...r })));
  figures.unshift(...before.figures.filter((f) => !ran.has(f.bench)));
  const order = BENCHES.map((b) => b.name);
  runs.sort((a, b) => order.indexOf(a.bench) - order.indexOf(b.bench));
  figures.sort((a, b) => order.indexOf(a.bench) - order.indexOf(b.bench));
}

const fmt = (x) => (x === undefined ? '' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2));
const md = [
  `# Benchmarks${quick ? ' (quick: smallest sizes, a smoke run, not figures to quote)' : ''}`,
  '',
  `${machine.date} · ${machine.cpus} × ${machine.cpu} · ${machine.memoryGiB} GiB · node ${machine.node} · CUDA ${machine.cuda === undefined ? 'not asked' : machine.cuda ? 'yes' : 'no'} · load average ${machine.loadAverageStart.toFixed(2)} at start, ${machine.loadAverageEnd.toFixed(2)} at end${only ? ` (this run: ${[...only].join(', ')}; the other rows are from the runs their row below names)` : ''}`,
  '',
  'Every ratio is from one run with both sides measured side by side. Written by `npm run bench`; each bench prints more than its row here.',
  '',
  '| bench | figure | ours | comparison | theirs | ratio | target | met |',
  '|---|---|---:|---|---:|---:|---|---|',
  ...figures.map((f) => `| ${f.bench} | ${f.figure}${f.note ? ` (${f.note})` : ''} | ${fmt(f.ours)} ${f.unit} | ${f.comparison ?? ''} | ${f.theirs === undefined ? '' : `${fmt(f.theirs)} ${f.unit === '× theirs' ? '' : f.unit}`} | ${f.ratio === undefined ? '' : `${fmt(f.ratio)}×`} | ${f.target ?? ''} | ${f.met === undefined ? '' : f.met ? 'yes' : '**no**'} |`),
  '',
  '| bench | script | ran | seconds | when | load average |',
  '|---|---|---|---:|---|---|',
  ...runs.map((r) => `| ${r.bench} | \`${r.script}\` | ${r.skipped ? `skipped: ${r.skipped}` : r.ok ? 'yes' : `**failed** (${r.error})`} | ${r.seconds} | ${r.date?.slice(0, 16).replace('T', ' ') ?? ''} | ${r.loadAverageStart?.toFixed(2) ?? ''} → ${r.loadAverageEnd?.toFixed(2) ?? ''} |`),
  '',
];
mkdirSync(outDir, { recursive: true });
writeFileSync(`${base}.json`, JSON.stringify({ machine, runs, figures }, null, 2) + '\n');
writeFileSync(`${base}.md`, md.join('\n'));
console.log(`\n${md.join('\n')}`);
console.log(`wrote ${base}.json and ${base}.md`);
const failed = thisRun.filter((r) => !r.ok).length;
console.log(`${thisRun.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
