// Incremental datasets (issue: core): an update after changing 100 files of a 10,000-file workspace
// against a full rebuild, measured side by side in one run; and the peak memory of a full build
// of 10,000 and of 100,000 files, each in a fresh child process. Run: npm run bench:data [-- --quick]
// (--quick: 2,000 files, and the memory run at 10,000 only).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/core/config/validate';
import { IndexCache, updateDatasets } from '../../src/core/data/incremental';
import { buildDatasets } from '../../src/core/data/shards';
import { workspaceLayout } from '../../src/core/paths';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';
import { figure, quick } from './figures';
import { median } from './stats';

const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', include: ['**/*.md'] }] }).config!;
const tok = new ByteTokenizer();

function makeWorkspace(files: number, bytesPerFile: number): { root: string; rels: string[] } {
  const root = mkdtempSync(join(tmpdir(), 'moa-bench-data-'));
  const line = 'def handler(request, context):  # serve one request and return the response body\n';
  const body = line.repeat(Math.ceil(bytesPerFile / line.length)).slice(0, bytesPerFile);
  const rels: string[] = [];
  for (let i = 0; i < files; i++) {
    const dir = `${i % 2 ? 'src' : 'docs'}/d${i % 100}`;
    if (i < 200) mkdirSync(join(root, dir), { recursive: true });
    const rel = `${dir}/f${i}.${i % 2 ? 'py' : 'md'}`;
    // Each file its own text: byte-identical copies are left out of the datasets (deduplicated).
    writeFileSync(join(root, rel), `# ${rel}\n${body}`.slice(0, bytesPerFile));
    rels.push(rel);
  }
  return { root, rels };
}

if (process.argv[2] === '--child-build') {
  // Child mode: one full build; the parent reads our peak RSS.
  const root = process.argv[3]!;
  const before = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  const m = buildDatasets(workspaceLayout(root), config, tok);
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ ms, startKiB: before, peakKiB: process.resourceUsage().maxRSS, files: m.domains.reduce((n, d) => n + d.files, 0) }));
  process.exit(0);
}

/** A full build in a fresh process whose V8 heap is capped: it fails if memory grows with content. */
function childBuild(root: string, heapMiB: number): { ms: number; startKiB: number; peakKiB: number; files: number } {
  return JSON.parse(execFileSync(process.execPath, [`--max-old-space-size=${heapMiB}`, __filename, '--child-build', root], { encoding: 'utf8', maxBuffer: 1 << 20 }));
}

const FILES = quick ? 2_000 : 10_000;
const ws = makeWorkspace(FILES, 2048);
try {
  const layout = workspaceLayout(ws.root);
  buildDatasets(layout, config, tok); // warm the page cache
  const full: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    buildDatasets(layout, config, tok);
    full.push(performance.now() - t0);
  }
  const warm = new IndexCache(layout);
  updateDatasets(layout, config, tok, [], warm); // a watcher has its indexes loaded
  const inc: number[] = [];
  const cold: number[] = [];
  for (let round = 0; round < 6; round++) {
    const changed = Array.from({ length: 100 }, (_, k) => ws.rels[(round * 700 + k * 7) % ws.rels.length]!);
    for (const rel of changed) writeFileSync(join(ws.root, rel), `# ${rel} changed in round ${round}\n` + 'x = 1\n'.repeat(300));
    const cache = round % 2 ? warm : new IndexCache(layout);
    const t0 = performance.now();
    const r = updateDatasets(layout, config, tok, changed, cache);
    (round % 2 ? inc : cold).push(performance.now() - t0);
    if (r.kind !== 'updated' || r.changed !== 100) throw new Error(`round ${round}: unexpected update: ${r.kind}, ${r.changed} changed`);
  }
  const f = median(full);
  const share = (100 * median(inc)) / f;
  console.log(`full rebuild, ${FILES.toLocaleString('en')} files (${(FILES * 2048 / 1e6).toFixed(0)} MB): ${f.toFixed(0)} ms (median of 3)`);
  console.log(`update after changing 100 files, watcher (indexes in memory): ${median(inc).toFixed(1)} ms = ${share.toFixed(1)} % of a full rebuild (target ≤ 5 %)`);
  figure({ bench: 'data', figure: `datasets: update after 100 of ${FILES.toLocaleString('en')} files change (watcher) vs full rebuild`, ours: median(inc), unit: 'ms', comparison: 'full rebuild', theirs: f, ratio: share / 100, target: '≤ 5 %', met: share <= 5 });
  console.log(`update after changing 100 files, fresh process (reads the indexes): ${median(cold).toFixed(1)} ms = ${((100 * median(cold)) / f).toFixed(1)} % of a full rebuild`);
} finally {
  rmSync(ws.root, { recursive: true, force: true });
}

for (const n of quick ? [10_000] : [10_000, 100_000]) {
  const big = makeWorkspace(n, 512);
  try {
    const heap = 64;
    const r = childBuild(big.root, heap);
    console.log(`full build of ${n.toLocaleString('en')} files of 512 B in a fresh process with a ${heap} MiB heap cap: ${(r.ms / 1000).toFixed(1)} s, peak RSS ${(r.peakKiB / 1024).toFixed(0)} MiB (${(r.startKiB / 1024).toFixed(0)} MiB at start), ${r.files} files indexed`);
    if (r.files !== n) throw new Error(`indexed ${r.files} of ${n} files`);
    figure({ bench: 'data', figure: `datasets: full build of ${n.toLocaleString('en')} files, peak RSS (${heap} MiB heap cap)`, ours: r.peakKiB / 1024, unit: 'MiB', note: `${(r.ms / 1000).toFixed(1)} s; ${(r.startKiB / 1024).toFixed(0)} MiB at start` });
  } finally {
    rmSync(big.root, { recursive: true, force: true });
  }
}
