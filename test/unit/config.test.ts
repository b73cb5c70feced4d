import { test } from 'node:test';
import type { Field } from '../../src/core/config/table';
import assert from 'node:assert/strict';
import { validateConfig, formatProblems } from '../../src/core/config/validate';
import { loadConfig } from '../../src/core/config/load';
import { MoaError } from '../../src/core/util/errors';
import { tempWorkspace } from '../helpers/tmp';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

test('a minimal config gets every default', () => {
  const r = validateConfig({ domains: [{ name: 'py', include: ['**/*.py'] }] });
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.baseModel, 'builtin:moa-tiny');
  assert.equal(r.config?.lora.r, 8);
  assert.deepEqual(r.config?.lora.targetModules, ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  assert.equal(r.config?.routing.mode, 'label');
  assert.deepEqual(r.config?.domains[0]?.exclude, []);
});

test('errors carry the JSON path and what was expected', () => {
  const r = validateConfig({ domains: [{ name: 'Bad Name', include: ['x'] }, { name: 'ok' }], lora: { r: 0 }, routing: { mode: 'magic' } });
  assert.equal(r.config, undefined);
  const paths = r.errors.map((e) => e.path);
  assert.ok(paths.includes('$.domains[0].name'), paths.join());
  assert.ok(paths.includes('$.domains[1]'), paths.join());
  assert.ok(paths.includes('$.lora.r'));
  assert.ok(paths.includes('$.routing.mode'));
  assert.match(r.errors.find((e) => e.path === '$.lora.r')!.message, /integer from 1/);
});

test('unknown keys warn and never fail', () => {
  const r = validateConfig({ domains: [{ name: 'md', languages: ['markdown'], colour: 'red' }], extra: 1 });
  assert.ok(r.config);
  assert.deepEqual(r.warnings.map((w) => w.path).sort(), ['$.domains[0].colour', '$.extra']);
});

test('duplicate domain names are rejected', () => {
  const r = validateConfig({ domains: [{ name: 'a', include: ['*'] }, { name: 'a', include: ['*'] }] });
  assert.match(formatProblems('moa.json', r.errors), /moa\.json: \$\.domains\[1\]\.name: duplicate/);
});

test('loadConfig names the file and the line (for the editor to open) for broken JSON, a bad value and a missing config', () => {
  const ws = tempWorkspace({ '.moa/moa.json': '{\n  "domains": [\n    {"name": "a", "include": ["*"]},\n  ]\n}\n' });
  try {
    const file = join(ws.root, '.moa/moa.json');
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(file) && /not valid JSON at line 4/.test(e.message) && e instanceof MoaError && e.at?.file === file && e.at.line === 4);
    writeFileSync(file, JSON.stringify({ domains: [{ name: 'a', include: ['*'] }], lora: { r: 8 }, training: { steps: -1 } }, null, 2));
    assert.throws(() => loadConfig(file), (e: Error) => /\$\.training\.steps/.test(e.message) && e instanceof MoaError && e.at?.line === readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('"steps"')) + 1);
    assert.throws(() => loadConfig(join(ws.root, 'nope.json')), /no MoA config/);
  } finally {
    ws.cleanup();
  }
});

test('the validator holds every field of the one table: its default, bounds, kind and closed list', async () => {
  const { SECTIONS } = await import('../../src/core/config/table');
  const domains = [{ name: 'a', include: ['*'] }];
  const defaults = validateConfig({ domains }).config! as unknown as Record<string, Record<string, unknown>>;
  let checked = 0;
  for (const [name, section] of Object.entries(SECTIONS)) {
    for (const [key, f] of Object.entries(section.fields as Record<string, Field>)) {
      const at = (v: unknown) => validateConfig({ domains, [name]: { [key]: v } });
      const ok = (v: unknown) => assert.deepEqual((at(v).config as unknown as Record<string, Record<string, unknown>> | undefined)?.[name]?.[key], v, `${name}.${key} = ${JSON.stringify(v)} accepted`);
      const bad = (v: unknown) => assert.deepEqual(at(v).errors.map((e) => e.path), [`$.${name}.${key}`], `${name}.${key} = ${JSON.stringify(v)} refused`);
      assert.deepEqual(defaults[name]![key], f.default, `${name}.${key} default`);
      if (f.kind === 'enum') {
        f.oneOf.forEach(ok);
        bad('nope');
      } else if (f.kind !== 'strings') {
        ok(f.min);
        ok(f.max);
        bad(f.min - (f.kind === 'integer' ? 1 : 1e-3));
        bad(f.max * 2 + 1);
        bad(String(f.default));
        if (f.kind === 'integer') bad(f.min + 0.5);
      } else {
        ok(f.oneOf ? [f.oneOf[f.oneOf.length - 1]] : ['x']);
        if (f.oneOf) bad(['not_a_module']);
        bad(['']);
      }
      checked++;
    }
  }
  assert.ok(checked >= 20, `${checked} fields checked`);
  // Whatever the table does not name is an unknown key: a warning, never an error.
  assert.deepEqual(validateConfig({ domains, lora: { rank: 4 } }).warnings.map((w) => w.path), ['$.lora.rank']);
});

test('the shipped JSON Schema is the table, written by the build, and names what the validator reads', async () => {
  const { readFileSync } = await import('node:fs');
  const { repoRoot } = await import('../helpers/tmp');
  const { configJsonSchema } = await import('../../src/core/config/jsonSchema');
  const shipped = JSON.parse(readFileSync(join(repoRoot(), 'schemas', 'moa.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
  assert.deepEqual(shipped, configJsonSchema(), 'scripts/build.mjs writes schemas/moa.schema.json from the table');
  const r = validateConfig(Object.fromEntries(Object.keys(shipped.properties).map((k) => [k, k === 'domains' ? [] : undefined])));
  assert.deepEqual(r.warnings, [], 'every top-level key of the schema is one the validator knows');
});

test('"make a domain of these" adds one domain per language of the loose files, keeping the rest of the config', async () => {
  const { addDomainsFor } = await import('../../src/core/config/edit');
  const ws = tempWorkspace({ 'infra/a.tf': 'resource "x" "y" {}\n', 'infra/b.tf': 'variable "z" {}\n', 'q/c.sql': 'SELECT 1;\n', 'notes.txt': 'x' });
  try {
    const file = join(ws.root, '.moa', 'moa.json');
    mkdirSync(join(ws.root, '.moa'), { recursive: true });
    writeFileSync(file, JSON.stringify({ version: 1, myKey: 'kept', domains: [{ name: 'sql', include: ['db/**/*.sql'] }] }));
    const added = addDomainsFor(file, ws.root, ['infra/a.tf', 'infra/b.tf', 'q/c.sql', 'notes.txt']);
    assert.deepEqual(added.map((d) => [d.name, d.include]), [['terraform', ['**/*.tf']]], 'sql is taken; plain text makes no domain');
    const after = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(after.myKey, 'kept');
    assert.deepEqual(after.domains.map((d: { name: string }) => d.name), ['sql', 'terraform']);
    assert.throws(() => addDomainsFor(file, ws.root, ['notes.txt']), /none of these files has a language/);
  } finally {
    ws.cleanup();
  }
});
