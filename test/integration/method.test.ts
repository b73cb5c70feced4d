// What Mixture-of-LoRAs promises, checked on a small real run: three domains with clearly
// different content (Python, English prose, SQL), experts + router + the mixed baseline trained by
// the real trainer on the built-in base, scored by `moa eval` through onnxruntime-node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const cli = join(repoRoot(), 'dist', 'cli.js');
const DOMAINS = ['python', 'prose', 'sql'];
let ws: { root: string; cleanup: () => void };
let report: {
  domains: string[];
  experts: string[];
  base: Record<string, number>;
  matrix: Record<string, Record<string, number>>;
  mixed: Record<string, number> | null;
  completions?: { columns: string[]; rows: Record<string, Record<string, { n: number; servedByOwnExpert: number }>> };
  label: Record<string, number>;
  learned: Record<string, number> | null;
  learnedSource?: string;
  routerAccuracy: Record<string, number | null> | null;
};

const NOUNS = ['order', 'invoice', 'customer', 'ticket', 'report', 'session', 'account', 'payment', 'shipment', 'review', 'profile', 'message', 'booking', 'device', 'license'];

function python(i: number): string {
  const n = NOUNS[i % NOUNS.length]!;
  const m = NOUNS[(i * 7 + 3) % NOUNS.length]!;
  return `import json\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass ${n[0]!.toUpperCase() + n.slice(1)}:\n    id: int\n    ${m}_id: int\n    total: float = 0.0\n\n    def to_dict(self):\n        return {"id": self.id, "${m}_id": self.${m}_id, "total": self.total}\n\n\ndef load_${n}s(path):\n    with open(path) as handle:\n        rows = json.load(handle)\n    return [${n[0]!.toUpperCase() + n.slice(1)}(**row) for row in rows if row.get("total", 0) > ${i}]\n\n\ndef total_for_${m}(items, ${m}_id):\n    return sum(item.total for item in items if item.${m}_id == ${m}_id)\n`;
}

function prose(i: number): string {
  const n = NOUNS[i % NOUNS.length]!;
  const m = NOUNS[(i * 5 + 1) % NOUNS.length]!;
  return `# Working with ${n}s\n\nEvery ${n} belongs to exactly one ${m}. When a ${m} is closed, the team reviews each of its ${n}s and decides whether it should be archived or moved.\n\nMost people open the ${n} list first thing in the morning. It shows what changed overnight, who changed it, and why. If something looks wrong, leave a note on the ${n} rather than editing it directly: the history is easier to follow that way.\n\nA few habits help. Keep titles short and specific. Link the ${m} in the first sentence. Close what you open, and say so when you do.\n`;
}

function sql(i: number): string {
  const n = NOUNS[i % NOUNS.length]!;
  const m = NOUNS[(i * 11 + 2) % NOUNS.length]!;
  return `CREATE TABLE ${n}s (\n  id INTEGER PRIMARY KEY,\n  ${m}_id INTEGER NOT NULL REFERENCES ${m}s(id),\n  total NUMERIC(10, 2) DEFAULT 0,\n  created_at TIMESTAMP NOT NULL\n);\n\nCREATE INDEX ${n}s_${m}_idx ON ${n}s (${m}_id);\n\nSELECT ${m}_id, COUNT(*) AS n, SUM(total) AS total\nFROM ${n}s\nWHERE created_at >= DATE '2024-01-${String((i % 27) + 1).padStart(2, '0')}'\nGROUP BY ${m}_id\nHAVING SUM(total) > ${i * 10}\nORDER BY total DESC;\n`;
}

function moa(args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args, '--workspace', ws.root], { cwd: ws.root, encoding: 'utf8', timeout: 900_000 });
  assert.equal(r.status, 0, `moa ${args.join(' ')} failed:\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

before(() => {
  const files: Record<string, string> = {
    '.moa/moa.json': JSON.stringify({
      version: 1,
      domains: [
        { name: 'python', include: ['**/*.py'] },
        { name: 'prose', include: ['**/*.md'] },
        { name: 'sql', include: ['**/*.sql'] },
      ],
      training: { steps: 60, batchSize: 4, seqLen: 128, lr: 2e-3, warmupSteps: 8, seed: 0 },
      router: { steps: 40, eta: 0.1, expertLrMult: 0.1, topK: 1 },
      data: { valFraction: 0.2 },
    }),
  };
  // 40 files a domain: enough text that no expert is cut by its 4-epoch cap long before the 60
  // steps the mixed baseline takes (prose, 15 distinct files, stops at 54); with 15 files SQL's
  // expert stopped at step 35 of 80 and the comparison was no longer "same steps".
  for (let i = 0; i < 40; i++) {
    files[`app/mod${i}.py`] = python(i);
    files[`docs/note${i}.md`] = prose(i);
    files[`db/q${i}.sql`] = sql(i);
  }
  ws = tempWorkspace(files);
  moa(['data']);
  moa(['train', '--stages', 'experts,router,mixed', '--json']);
  report = JSON.parse(moa(['eval', '--json', '--windows', '8', '--completions', '--positions', '4']));
  // The table, for the log: the margins behind the assertions below.
  console.log(moa(['eval', '--windows', '8']));
});

after(() => ws?.cleanup());

test('each expert has the lowest held-out loss on its own domain', () => {
  assert.deepEqual([...report.domains].sort(), [...DOMAINS].sort());
  for (const d of DOMAINS) {
    const row = report.matrix[d]!;
    for (const e of DOMAINS) if (e !== d) assert.ok(row[d]! < row[e]!, `${d}: own expert ${row[d]} < expert ${e} ${row[e]}`);
    assert.ok(row[d]! < report.base[d]!, `${d}: own expert ${row[d]} < base ${report.base[d]}`);
  }
});

test('routed MoA beats the mixed baseline (one LoRA, same rank and steps, all the data) on average', () => {
  assert.ok(report.mixed, 'the mixed baseline was trained and scored');
  const label = mean(DOMAINS.map((d) => report.label[d]!));
  const mixed = mean(DOMAINS.map((d) => report.mixed![d]!));
  assert.ok(label < mixed, `MoA label routing ${label.toFixed(4)} < mixed ${mixed.toFixed(4)}`);
  assert.equal(report.learnedSource, 'onnx', 'the learned router is scored here, on the same windows');
  const learned = mean(DOMAINS.map((d) => report.learned![d]!));
  const base = mean(DOMAINS.map((d) => report.base[d]!));
  assert.ok(learned < base, `MoA learned routing ${learned.toFixed(4)} < base ${base.toFixed(4)}`);
});

test('the learned router picks the right expert well above chance', () => {
  const acc = DOMAINS.map((d) => report.routerAccuracy?.[d]);
  assert.ok(acc.every((a) => typeof a === 'number'), `accuracy for every domain: ${JSON.stringify(report.routerAccuracy)}`);
  const m = mean(acc as number[]);
  assert.ok(m >= 0.8, `mean router accuracy ${m.toFixed(2)} ≥ 0.8 (chance is ${(1 / 3).toFixed(2)})`);
});

test('completions: every way of serving, the mixed baseline too, and who served each position', () => {
  const c = report.completions!;
  // moa-tiny has FIM sentinels: the same expert with a prefix-only prompt is a column too.
  assert.deepEqual(c.columns, ['base', 'label', 'label-prefix-only', 'mixed', 'learned', 'auto']);
  for (const d of DOMAINS) {
    const row = c.rows[d]!;
    for (const col of c.columns) assert.equal(row[col]!.n, 4, `${d} ${col}`);
    assert.equal(row['label']!.servedByOwnExpert, 1, `${d}: label routing serves the domain's expert`);
    assert.equal(row['label-prefix-only']!.servedByOwnExpert, 1, `${d}: so does its prefix-only twin`);
    assert.equal(row['auto']!.servedByOwnExpert, 1, `${d}: auto routing, no embedded block: the domain's expert`);
    assert.equal(row['base']!.servedByOwnExpert, 0);
    assert.equal(row['mixed']!.servedByOwnExpert, 0, 'the mixed baseline is no domain\'s expert');
  }
});
