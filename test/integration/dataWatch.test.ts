// Datasets as users build them: `moa data --watch` and the extension's cancellable build in a child
// process, with the real CLI bundle, real chokidar and real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuildCancelled, buildDatasetsInChild } from '../../src/core/data/buildProcess';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const cli = join(repoRoot(), 'dist', 'cli.js');
const builder = { node: process.execPath, builder: join(repoRoot(), 'dist', 'dataBuild.js'), productRoot: repoRoot() };

test('moa data --watch re-tokenizes a changed file, follows a rename and stops cleanly on SIGINT', async () => {
  const files: Record<string, string> = {
    '.moa/moa.json': JSON.stringify({ version: 1, domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', include: ['**/*.md'] }] }),
  };
  for (let i = 0; i < 8; i++) files[`src/m${i}.py`] = `def f${i}():\n    return ${i}\n`;
  for (let i = 0; i < 4; i++) files[`docs/d${i}.md`] = `# Doc ${i}\n`;
  const ws = tempWorkspace(files);
  const child = spawn(process.execPath, [cli, 'data', '--watch', '--json', '--workspace', ws.root], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (b) => {
    buf += b;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const nextLine = async (n: number) => {
    const deadline = Date.now() + 20_000;
    while (lines.length < n) {
      if (Date.now() > deadline) throw new Error(`no line ${n} from moa data --watch; stderr: ${stderr}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return lines[n - 1]!;
  };
  try {
    const first = (await nextLine(1)) as { domains: { domain: string; files: number }[] };
    assert.equal(first.domains.find((d) => d.domain === 'python')!.files, 8);
    for (const until = Date.now() + 20_000; !stderr.includes('watching'); ) {
      if (Date.now() > until) throw new Error(`moa data --watch never said it was watching; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    writeFileSync(join(ws.root, 'src/m1.py'), 'def f1():\n    return "edited"\n');
    const upd = (await nextLine(2)) as { kind: string; changed: number; removed: number };
    assert.equal(upd.kind, 'updated');
    assert.equal(upd.changed, 1);
    assert.equal(upd.removed, 0);

    renameSync(join(ws.root, 'docs/d0.md'), join(ws.root, 'docs/renamed.py'));
    // One burst or two, depending on how the events arrive: the docs file leaves, python gains one.
    const deadline = Date.now() + 20_000;
    let domains: { domain: string; files: number }[] = [];
    do {
      const l = (await nextLine(lines.length + 1)) as { domains: { domain: string; files: number }[] };
      domains = l.domains;
    } while ((domains.find((d) => d.domain === 'python')!.files !== 9 || domains.find((d) => d.domain === 'docs')!.files !== 3) && Date.now() < deadline);
    assert.equal(domains.find((d) => d.domain === 'python')!.files, 9, 'the renamed file moved to the python domain');
    assert.equal(domains.find((d) => d.domain === 'docs')!.files, 3);

    child.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
  } finally {
    child.kill('SIGKILL');
    ws.cleanup();
  }
});

test('a dataset build in a child process can be cancelled and loses nothing', async () => {
  const ws = tempWorkspace({ '.moa/moa.json': JSON.stringify({ version: 1, domains: [{ name: 'python', include: ['**/*.py'] }] }) });
  try {
    for (let d = 0; d < 100; d++) {
      mkdirSync(join(ws.root, `src/d${d}`), { recursive: true });
      // Each file different: byte-identical copies would be left out of the datasets.
      for (let i = 0; i < 20; i++) writeFileSync(join(ws.root, `src/d${d}/m${i}.py`), `def f${i}():\n    return ${d * 1000 + i}\n`);
    }
    const first = await buildDatasetsInChild({ ...builder, root: ws.root });
    assert.equal(first.domains[0]!.files, 2000);
    const manifestFile = join(ws.root, '.moa/cache/data/manifest.json');
    const before = readFileSync(manifestFile, 'utf8');

    // Enough new files that the next build takes a while.
    for (let d = 0; d < 100; d++) for (let i = 20; i < 120; i++) writeFileSync(join(ws.root, `src/d${d}/m${i}.py`), `X = ${d * 1000 + i}\n`.repeat(40));
    // Deterministic: while another process holds the datasets lock the child waits, so the cancel
    // surely lands mid-build.
    const lock = join(ws.root, '.moa/cache/data/.lock');
    writeFileSync(lock, String(process.pid));
    const abort = new AbortController();
    const started = Date.now();
    setTimeout(() => abort.abort(), 300);
    await assert.rejects(buildDatasetsInChild({ ...builder, root: ws.root, signal: abort.signal }), BuildCancelled);
    assert.ok(Date.now() - started < 5_000, 'cancelling returns at once');
    assert.equal(readFileSync(manifestFile, 'utf8'), before, 'the previous datasets are kept');
    rmSync(lock);
    // Timed: cancelled while writing shards (on a fast machine it may finish first; both must be whole).
    const timed = new AbortController();
    setTimeout(() => timed.abort(), 250);
    const outcome = await buildDatasetsInChild({ ...builder, root: ws.root, signal: timed.signal }).then(
      () => 'finished',
      (e: unknown) => (e instanceof BuildCancelled ? 'cancelled' : e),
    );
    assert.ok(outcome === 'finished' || outcome === 'cancelled', String(outcome));
    if (outcome === 'cancelled') assert.equal(readFileSync(manifestFile, 'utf8'), before, 'a build killed mid-write keeps the previous datasets');

    const after = await buildDatasetsInChild({ ...builder, root: ws.root });
    assert.equal(after.domains[0]!.files, 12_000, 'the next build is not stuck on the killed one\'s lock');
    const leftovers = readdirSync(join(ws.root, '.moa/cache/data/python')).filter((n) => n.includes('.tmp-'));
    assert.deepEqual(leftovers, [], 'temp files of the killed build are gone');

    await assert.rejects(buildDatasetsInChild({ ...builder, root: join(ws.root, 'nowhere') }), /dataset build failed: .*nowhere/);
    // A builder that dies without answering is named with its exit and its last words.
    writeFileSync(join(ws.root, 'dies.js'), "console.error('the builder broke'); process.exit(3);");
    await assert.rejects(buildDatasetsInChild({ ...builder, builder: join(ws.root, 'dies.js'), root: ws.root }), /dataset build failed \(exit 3\): the builder broke/);
  } finally {
    ws.cleanup();
  }
});
