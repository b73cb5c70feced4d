// `node bench/real-repo.mjs DIR [--keep]`: MoA Studio on a checkout of a real repository, with the
// default settings, as a new user would run it: init, data, train, eval. Prints the wall time of
// each command and the eval table's means; writes nothing into DIR (it works on a copy, which
// --keep leaves behind). Repositories are fetched by whoever runs it, never committed here.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.js');
const src = process.argv[2];
if (!src) {
  console.error('usage: node bench/real-repo.mjs DIR [--keep]   (build first: npm run build)');
  process.exit(2);
}
const ws = join(mkdtempSync(join(tmpdir(), 'moa-real-')), basename(resolve(src)));
cpSync(resolve(src), ws, { recursive: true, filter: (p) => !p.split('/').includes('.git') && !p.split('/').includes('.moa') });

function moa(args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args, '--workspace', ws], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    console.error(`moa ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
    process.exit(1);
  }
  return { s, out: r.stdout, err: r.stderr };
}

const load0 = loadavg()[0];
const init = moa(['init', '--json']);
const data = moa(['data', '--json']);
const manifest = JSON.parse(data.out);
const train = moa(['train', '--json']);
const events = train.out.trim().split('\n').map((l) => JSON.parse(l));
const evalRun = moa(['eval', '--json', '--completions', '--positions', '16']);
const report = JSON.parse(evalRun.out);
const mean = (xs) => {
  const v = xs.filter((x) => typeof x === 'number');
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
};
const col = (get) => mean(report.domains.map(get)).toFixed(3);
const done = events.at(-1);
const files = manifest.domains.reduce((a, d) => a + d.files, 0);
console.log(`# ${basename(resolve(src))}: ${manifest.domains.length} domains, ${files} files in them (${JSON.stringify(manifest.skipped)} skipped, ${manifest.unassigned} in no domain)`);
console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model}; load ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
console.log('| step | wall |\n|---|---:|');
for (const [k, v] of [['moa init', init], ['moa data', data], ['moa train (defaults)', train], ['moa eval', evalRun]]) console.log(`| ${k} | ${v.s.toFixed(1)} s |`);
console.log(`\nstage 1 ran ${done.steps_done} of ${events.find((e) => e.type === 'plan')?.steps} steps (ended: ${JSON.stringify(done.ended)}); stopped early: ${JSON.stringify(done.stopped_early)}`);
console.log(`\n| mean held-out loss | base | mixed | MoA label | MoA learned | router acc |\n|---|---:|---:|---:|---:|---:|`);
console.log(`| ${report.domains.length} domains | ${col((d) => report.base[d])} | ${report.mixed ? col((d) => report.mixed[d]) : '—'} | ${col((d) => report.label[d])} | ${report.learned ? col((d) => report.learned[d]) : '—'} | ${report.routerAccuracy ? (mean(report.domains.map((d) => report.routerAccuracy[d])) * 100).toFixed(0) + ' %' : '—'} |`);
const own = report.domains.filter((d) => report.experts.includes(d) && Math.min(...report.experts.map((e) => report.matrix[d][e])) === report.matrix[d][d]).length;
console.log(`\nown expert best on its domain: ${own} of ${report.domains.filter((d) => report.experts.includes(d)).length}`);
const pct = (x) => (typeof x === 'number' ? `${Math.round(x * 100)} %` : '—');
if (report.embedded) {
  const kinds = ['file', 'auto', 'learned-prompt', 'learned-block'];
  console.log(`\nfenced blocks in ${report.embedded.prose} text: loss after the cursor (block's own expert served)\n| block | n | ${kinds.join(' | ')} |\n|---|---:|${kinds.map(() => '---:').join('|')}|`);
  for (const r of report.embedded.rows) console.log(`| ${r.domain} | ${r.samples} | ${kinds.map((k) => `${r.loss[k]?.toFixed(3) ?? '—'} (${pct(r.servedByBlockExpert[k])})`).join(' | ')} |`);
}
if (report.completions) {
  const c = report.completions;
  console.log(`\ncompletions to the end of the line, ${c.positionsPerDomain} held-out positions per domain: exact · edit similarity · own expert served · p50 ms\n| domain | ${c.columns.join(' | ')} |\n|---|${c.columns.map(() => '---:').join('|')}|`);
  const cell = (s) => (s ? `${pct(s.exact)} · ${s.editSimilarity.toFixed(2)} · ${pct(s.servedByOwnExpert)} · ${Math.round(s.p50Ms)}` : '—');
  for (const [d, row] of Object.entries(c.rows)) console.log(`| ${d} | ${c.columns.map((k) => cell(row[k])).join(' | ')} |`);
  const m = (k, f) => mean(Object.values(c.rows).map((row) => (row[k] ? f(row[k]) : undefined)));
  console.log(`| mean | ${c.columns.map((k) => `${pct(m(k, (s) => s.exact))} · ${m(k, (s) => s.editSimilarity).toFixed(2)} · ${pct(m(k, (s) => s.servedByOwnExpert))} · ${Math.round(m(k, (s) => s.p50Ms))}`).join(' | ')} |`);
}
if (process.argv.includes('--keep')) console.log(`\nworkspace kept: ${ws}`);
else rmSync(dirname(ws), { recursive: true, force: true });
