import { test } from 'node:test';
import { SAFE_NAME } from '../../src/core/names';
import assert from 'node:assert/strict';
import { validateConfig, formatProblems } from '../../src/core/config/validate';
import { loadConfig } from '../../src/core/config/load';
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

test('loadConfig names the file for broken JSON and for a missing config', () => {
  const ws = tempWorkspace({ '.moa/moa.json': '{ "domains": [' });
  try {
    const file = join(ws.root, '.moa/moa.json');
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(file) && /not valid JSON/.test(e.message));
    assert.throws(() => loadConfig(join(ws.root, 'nope.json')), /no MoA config/);
  } finally {
    ws.cleanup();
  }
});

test('the shipped JSON Schema names the same keys and defaults as the validator', async () => {
  const { readFileSync } = await import('node:fs');
  const { repoRoot } = await import('../helpers/tmp');
  const schema = JSON.parse(readFileSync(join(repoRoot(), 'schemas', 'moa.schema.json'), 'utf8'));
  const config = validateConfig({ domains: [{ name: 'a', include: ['*'] }] }).config!;
  // One name rule: the schema's, the editor's, and the trainer's (trainer/tests/test_event_contract.py).
  assert.equal(SAFE_NAME.source, schema.properties.domains.items.properties.name.pattern);
  for (const section of ['lora', 'training', 'data', 'router'] as const) {
    const props = schema.properties[section].properties;
    assert.deepEqual(Object.keys(props).sort(), Object.keys(config[section]).sort(), section);
    for (const [k, v] of Object.entries(config[section])) assert.deepEqual(props[k].default, v, `${section}.${k} default`);
  }
  assert.equal(schema.properties.baseModel.default, config.baseModel);
  assert.deepEqual(schema.properties.routing.properties.mode.enum, ['label', 'learned', 'auto', 'pinned', 'off']);
  // Every key the validator warns about as unknown is absent from the schema, and vice versa.
  const r = validateConfig(Object.fromEntries(Object.keys(schema.properties).map((k) => [k, k === 'domains' ? [] : undefined])));
  assert.deepEqual(r.warnings, []);
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
