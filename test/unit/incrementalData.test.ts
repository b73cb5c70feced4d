import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { datasetsForTraining } from '../../src/core/data/compact';
import { garbageTokens, readDomainIndex, type DomainIndex } from '../../src/core/data/fileIndex';
import { updateDatasets } from '../../src/core/data/incremental';
import { withDataLock } from '../../src/core/data/lock';
import { buildDatasets, readManifest, type DatasetManifest } from '../../src/core/data/shards';
import { watchDatasets } from '../../src/core/data/watch';
import { validateConfig } from '../../src/core/config/validate';
import { workspaceLayout, type WorkspaceLayout } from '../../src/core/paths';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';
import { tempWorkspace } from '../helpers/tmp';

const tok = new ByteTokenizer();
const config = validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', include: ['**/*.md'] }], data: { valFraction: 0.2 } }).config!;

function workspace(n: number) {
  const files: Record<string, string> = { '.gitignore': 'ignored/\n' };
  for (let i = 0; i < n; i++) files[`src/pkg${i % 3}/m${i}.py`] = `def f${i}():\n    return ${i}\n`;
  for (let i = 0; i < 6; i++) files[`docs/d${i}.md`] = `# Doc ${i}\n\nText ${i}.\n`;
  return tempWorkspace(files);
}

/** Every live document, by file, read back through the index: what training would see. */
function documents(layout: WorkspaceLayout, domain: string): Map<string, { split: number; tokens: number[] }> {
  const index = readDomainIndex(layout, domain)!;
  const shards = [join(layout.dataDir, domain, 'train.bin'), join(layout.dataDir, domain, 'val.bin')].map((p) => {
    const b = readFileSync(p);
    return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  });
  const out = new Map<string, { split: number; tokens: number[] }>();
  for (const [rel, f] of Object.entries(index.files)) out.set(rel, { split: f.s, tokens: Array.from(shards[f.s]!.subarray(f.o, f.o + f.n)) });
  return out;
}

function snapshot(layout: WorkspaceLayout, m: DatasetManifest) {
  return m.domains.map((d) => ({
    stats: { ...d },
    docs: [...documents(layout, d.domain)].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
  }));
}

function write(root: string, rel: string, content: string | Buffer) {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), content);
}

test('an update re-tokenizes only what changed and ends where a full rebuild does', () => {
  const ws = workspace(40);
  try {
    const layout = workspaceLayout(ws.root);
    buildDatasets(layout, config, tok);
    const before = readDomainIndex(layout, 'python')!;
    write(ws.root, 'src/pkg0/m0.py', 'def f0():\n    return "changed"\n');
    write(ws.root, 'src/pkg1/new.py', 'NEW = 1\n');
    write(ws.root, 'docs/new.md', '# New\n');
    rmSync(join(ws.root, 'src/pkg2/m2.py'));
    renameSync(join(ws.root, 'src/pkg1/m1.py'), join(ws.root, 'src/pkg1/renamed.py'));
    write(ws.root, 'src/pkg0/blob.py', Buffer.from([1, 0, 2, 0]));
    write(ws.root, 'ignored/x.py', 'IGNORED = 1\n');
    write(ws.root, 'node_modules/y.py', 'EXCLUDED = 1\n');
    const r = updateDatasets(layout, config, tok, [
      'src/pkg0/m0.py', 'src/pkg1/new.py', 'docs/new.md', 'src/pkg2/m2.py', 'src/pkg1/m1.py', 'src/pkg1/renamed.py',
      'src/pkg0/blob.py', 'ignored/x.py', 'node_modules/y.py', 'src/pkg0/m3.py',
    ]);
    assert.equal(r.kind, 'updated');
    assert.equal(r.changed, 4, 'changed m0, new.py, renamed.py, docs/new.md');
    assert.equal(r.removed, 2, 'deleted m2 and the old name of the renamed file');
    const after = readDomainIndex(layout, 'python')!;
    assert.equal(after.files['src/pkg0/m3.py']!.o, before.files['src/pkg0/m3.py']!.o, 'an unchanged file keeps its place');
    assert.ok(garbageTokens(after) > 0, 'the old documents stay until compaction');
    assert.equal(after.files['src/pkg0/blob.py'], undefined, 'a binary file is skipped');
    assert.equal(after.files['ignored/x.py'], undefined, 'a gitignored file is skipped');
    assert.equal(after.files['node_modules/y.py'], undefined, 'an excluded folder is skipped');
    const updated = snapshot(layout, readManifest(layout)!);

    const compacted = datasetsForTraining(layout)!;
    assert.equal(garbageTokens(readDomainIndex(layout, 'python')!), 0);
    const py = compacted.domains.find((d) => d.domain === 'python')!;
    assert.equal(statSync(py.trainPath).size, py.trainTokens * 4, 'a compacted shard holds only live documents');
    assert.deepEqual(snapshot(layout, compacted), updated, 'compaction keeps every document');

    const full = buildDatasets(layout, config, tok);
    assert.deepEqual(snapshot(layout, full).map((d) => ({ ...d, stats: { ...d.stats } })), updated, 'same documents, stats and fingerprints as a full rebuild');
  } finally {
    ws.cleanup();
  }
});

test('an update handles deleted folders, touched files, config and .gitignore changes, and a torn append', () => {
  const ws = workspace(12);
  try {
    const layout = workspaceLayout(ws.root);
    const first = buildDatasets(layout, config, tok);
    writeFileSync(join(ws.root, 'src/pkg1/m1.py'), readFileSync(join(ws.root, 'src/pkg1/m1.py')));
    assert.equal(updateDatasets(layout, config, tok, ['src/pkg1/m1.py']).kind, 'unchanged', 'same content is no change');

    rmSync(join(ws.root, 'src/pkg2'), { recursive: true });
    const r = updateDatasets(layout, config, tok, ['src/pkg2']);
    assert.equal(r.removed, 4, 'every file under a deleted folder goes');
    assert.ok(Object.keys(readDomainIndex(layout, 'python')!.files).every((p) => !p.startsWith('src/pkg2/')));

    // A crash after an append but before the index write leaves a tail no entry owns.
    appendFileSync(join(layout.dataDir, 'python', 'train.bin'), Buffer.alloc(64, 7));
    write(ws.root, 'src/pkg0/late.py', 'LATE = 1\n');
    updateDatasets(layout, config, tok, ['src/pkg0/late.py']);
    const late = documents(layout, 'python').get('src/pkg0/late.py')!;
    assert.deepEqual(late.tokens, [256, ...Buffer.from('LATE = 1\n'), 257]);
    // Updates go to index.log; a torn last line (a crash mid-write) is skipped.
    const logPath = join(layout.dataDir, 'python', 'index.log');
    assert.equal(readFileSync(logPath, 'utf8').trim().split('\n').length, 2, 'one log line for each of the two updates that changed python');
    appendFileSync(logPath, '{"g":1,"stored":[1,');
    assert.deepEqual(documents(layout, 'python').get('src/pkg0/late.py'), late);

    write(ws.root, '.gitignore', 'ignored/\nsrc/pkg0/\n');
    assert.equal(updateDatasets(layout, config, tok, ['.gitignore']).kind, 'rebuilt');
    assert.ok(Object.keys(readDomainIndex(layout, 'python')!.files).every((p) => !p.startsWith('src/pkg0/')));

    // A domain whose every file goes is reported as emptied (what the watcher says).
    rmSync(join(ws.root, 'docs'), { recursive: true });
    const none = updateDatasets(layout, config, tok, ['docs']);
    assert.equal(none.kind, 'updated');
    assert.deepEqual(none.emptied, ['docs']);

    const narrower = validateConfig({ domains: [{ name: 'docs', include: ['**/*.md'] }], data: { valFraction: 0.2 } }).config!;
    const rebuilt = updateDatasets(layout, narrower, tok, []);
    assert.equal(rebuilt.kind, 'rebuilt', 'another config rebuilds');
    assert.deepEqual(rebuilt.manifest.domains.map((d) => d.domain), ['docs']);
    assert.notEqual(first.domains.length, rebuilt.manifest.domains.length);
  } finally {
    ws.cleanup();
  }
});

test('a small domain whose held-out file changes is rebuilt whole, as a full build would split it', () => {
  const ws = tempWorkspace({ 'a.md': '# a\n', 'b.md': '# b\n', 'c.md': '# c\n' });
  try {
    const layout = workspaceLayout(ws.root);
    const cfg = validateConfig({ domains: [{ name: 'docs', include: ['**/*.md'] }], data: { valFraction: 0.01 } }).config!;
    buildDatasets(layout, cfg, tok);
    const held = Object.entries(readDomainIndex(layout, 'docs')!.files).find(([, f]) => f.s === 1)![0];
    rmSync(join(ws.root, held));
    const r = updateDatasets(layout, cfg, tok, [held]);
    assert.deepEqual(r.rebuiltDomains, ['docs']);
    const ix: DomainIndex = readDomainIndex(layout, 'docs')!;
    assert.equal(Object.values(ix.files).filter((f) => f.s === 1).length, 1, 'another file is held out');
    assert.equal(garbageTokens(ix), 0);
  } finally {
    ws.cleanup();
  }
});

test('the datasets lock waits for a live owner and takes over from a dead one', () => {
  const ws = tempWorkspace({});
  try {
    const layout = workspaceLayout(ws.root);
    mkdirSync(layout.dataDir, { recursive: true });
    writeFileSync(join(layout.dataDir, '.lock'), String(process.ppid));
    assert.throws(() => withDataLock(layout, () => 1, 100), /datasets are locked by process/);
    writeFileSync(join(layout.dataDir, '.lock'), '999999999');
    assert.equal(withDataLock(layout, () => withDataLock(layout, () => 42)), 42, 'taken over; nested use does not deadlock');
    assert.throws(() => statSync(join(layout.dataDir, '.lock')), 'released');
  } finally {
    ws.cleanup();
  }
});

test('the watcher coalesces a burst of real file changes into few updates and keeps the datasets current', async () => {
  const ws = workspace(20);
  try {
    const layout = workspaceLayout(ws.root);
    mkdirSync(layout.moaDir, { recursive: true });
    writeFileSync(layout.configFile, JSON.stringify({ version: 1, domains: config.domains, data: { valFraction: 0.2 } }));
    buildDatasets(layout, config, tok);
    const updates: { kind: string; changed: number; removed: number }[] = [];
    const errors: unknown[] = [];
    const w = watchDatasets(layout, {
      load: () => ({ config, tokenizer: tok }),
      onUpdate: (r) => updates.push({ kind: r.kind, changed: r.changed, removed: r.removed }),
      onError: (e) => errors.push(e),
      debounceMs: 250,
    });
    try {
      await w.ready;
      for (let i = 0; i < 30; i++) write(ws.root, `src/burst/b${i}.py`, `B = ${i}\n`);
      rmSync(join(ws.root, 'src/pkg0/m0.py'));
      renameSync(join(ws.root, 'docs/d1.md'), join(ws.root, 'docs/moved.md'));
      const deadline = Date.now() + 15_000;
      const has = () => {
        const py = readDomainIndex(layout, 'python')?.files ?? {};
        const docs = readDomainIndex(layout, 'docs')?.files ?? {};
        return Object.keys(py).filter((p) => p.startsWith('src/burst/')).length === 30 && !py['src/pkg0/m0.py'] && docs['docs/moved.md'] && !docs['docs/d1.md'];
      };
      while (!has() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await w.idle();
      assert.ok(has(), `the datasets follow the changes (updates: ${JSON.stringify(updates)}, errors: ${errors.map(String).join('; ')})`);
      assert.deepEqual(errors, []);
      const events = 30 + 1 + 2;
      assert.ok(updates.length >= 1 && updates.length < events / 3, `a burst is coalesced: ${updates.length} updates for ${events} events`);
      assert.ok(updates.every((u) => u.kind === 'updated'), 'only the changed files were processed');
      const m = readManifest(layout)!;
      assert.equal(m.domains.find((d) => d.domain === 'python')!.files, 20 - 1 + 30);
    } finally {
      await w.dispose();
    }
  } finally {
    ws.cleanup();
  }
});

test('a changed notebook updates its code and Markdown parts, ending where a full rebuild does', () => {
  const ws = workspace(6);
  try {
    const layout = workspaceLayout(ws.root);
    const nb = (code: string[], markdown: string[]) =>
      JSON.stringify({ metadata: { kernelspec: { language: 'python' } }, cells: [...markdown.map((m) => ({ cell_type: 'markdown', source: m })), ...code.map((c) => ({ cell_type: 'code', source: c, outputs: [{ text: 'OUTPUT' }] }))] });
    write(ws.root, 'nb/a.ipynb', nb(['x = 1\n'], ['# A\n']));
    buildDatasets(layout, config, tok);
    assert.ok(readDomainIndex(layout, 'python')!.files['nb/a.ipynb#code.py']);
    assert.ok(readDomainIndex(layout, 'docs')!.files['nb/a.ipynb#markdown.md']);
    // The Markdown cells go, a code cell is added: one update, only this notebook re-read.
    write(ws.root, 'nb/a.ipynb', nb(['x = 1\n', 'y = x + 1\n'], []));
    const r = updateDatasets(layout, config, tok, ['nb/a.ipynb']);
    assert.equal(r.kind, 'updated');
    assert.deepEqual([r.changed, r.removed], [1, 1]);
    const updated = snapshot(layout, readManifest(layout)!);
    assert.ok(!readDomainIndex(layout, 'docs')!.files['nb/a.ipynb#markdown.md']);
    buildDatasets(layout, config, tok);
    assert.deepEqual(updated, snapshot(layout, readManifest(layout)!), 'the same datasets as a full rebuild');
    const code = documents(layout, 'python').get('nb/a.ipynb#code.py')!;
    assert.equal(Buffer.from(code.tokens.slice(1, -1)).toString(), 'x = 1\n\ny = x + 1\n', 'cells joined, outputs never read');
  } finally {
    ws.cleanup();
  }
});
