// The layers, held: core never reaches the editor or the CLI, the CLI never reaches the editor,
// webviews share only types with core (ARCHITECTURE.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helpers/tmp';

const root = repoRoot();

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every module specifier a file imports (static imports, re-exports, dynamic imports, require). */
function imports(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) out.push({ spec: m[3]!, typeOnly: !!m[2] });
  for (const m of text.matchAll(/(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

const offenders = (dir: string, bad: (spec: string, typeOnly: boolean) => boolean) =>
  sources(join(root, dir)).flatMap((f) => imports(f).filter((i) => bad(i.spec, i.typeOnly)).map((i) => `${relative(root, f)} imports ${i.spec}`));

test('src/core never imports vscode, the extension or the CLI', () => {
  assert.deepEqual(offenders('src/core', (s) => s === 'vscode' || /(^|\/)(extension|cli)\//.test(s)), []);
});

test('the CLI never imports vscode or the extension', () => {
  assert.deepEqual(offenders('src/cli', (s) => s === 'vscode' || /(^|\/)extension\//.test(s)), []);
});

test('webviews take only types from core and the host, never code (they run in the browser)', () => {
  assert.deepEqual(offenders('webview', (s, typeOnly) => /(^|\/)src\//.test(s) && !typeOnly), []);
});

test('the import scanner sees what it must (a check that can fail)', () => {
  const probe = join(root, 'src', 'core', 'routing', 'resolve.ts');
  assert.ok(imports(probe).some((i) => i.spec === './cursor'), 'resolve.ts imports ./cursor');
});

test('settings are read in one place, with package.json\'s defaults, every declared key and no other', async () => {
  const offenders = sources(join(root, 'src')).filter((f) => !f.endsWith(join('extension', 'settings.ts')) && readFileSync(f, 'utf8').includes('getConfiguration('));
  assert.deepEqual(offenders.map((f) => relative(root, f)), []);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const declared = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^moa\./, '')).sort();
  const text = readFileSync(join(root, 'src', 'extension', 'settings.ts'), 'utf8');
  const keys = /SETTING_KEYS = \[([^\]]*)\]/.exec(text)![1]!.split(',').map((s) => s.trim().replace(/'/g, '')).filter(Boolean).sort();
  assert.deepEqual(keys, declared);
  for (const k of keys) assert.ok(text.includes(`'${k}'`) && text.split(`'${k}'`).length > 2, `settings.ts reads ${k}`);
});

test('every command package.json declares is registered by the extension, and none is registered undeclared', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const declared = (pkg.contributes.commands as { command: string }[]).map((c) => c.command).sort();
  const registered = [...new Set(sources(join(root, 'src', 'extension')).flatMap((f) =>
    [...readFileSync(f, 'utf8').matchAll(/(?:\bcmd|registerCommand)\('(moa\.[A-Za-z]+)'/g)].map((m) => m[1]!)))].sort();
  assert.deepEqual(registered, declared);
});
