import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRoute, type RouteQuery } from '../../src/core/routing/resolve';
import { blockAtCursor, languageOfFenceTag } from '../../src/core/routing/cursor';
import { KNOWN_LANGUAGES } from '../../src/core/domains/languages';
import { validateConfig } from '../../src/core/config/validate';
import { pinExpert, unpinExpert } from '../../src/core/routing/pin';
import { readExpertState } from '../../src/core/adapters/state';
import { loadConfig } from '../../src/core/config/load';
import { setInferenceWeights, setRoutingMode } from '../../src/core/config/edit';
import { workspaceLayout } from '../../src/core/paths';
import { tempWorkspace } from '../helpers/tmp';

const config = (mode = 'label') =>
  validateConfig({ domains: [{ name: 'python', include: ['**/*.py'] }, { name: 'docs', languages: ['markdown'] }, { name: 'js', languages: ['javascript'] }], routing: { mode } }).config!;
const route = (mode: string, q: Partial<RouteQuery> & { relPath: string }) => resolveRoute(config(mode), { attached: new Set(['python', 'docs', 'js']), ...q });

test('label routing sends a file to its domain expert', () => {
  const r = route('label', { relPath: 'src/a.py' });
  assert.equal(r.domain, 'python');
  assert.deepEqual(r.experts, [{ name: 'python', weight: 1 }]);
});

test('no domain, no expert, or routing off: base model, with the reason', () => {
  assert.deepEqual(route('label', { relPath: 'main.go', attached: new Set(['python']) }).experts, []);
  const missing = route('label', { relPath: 'README.md', attached: new Set(['python']) });
  assert.equal(missing.domain, 'docs');
  assert.match(missing.reason, /no attached expert/);
  assert.match(route('off', { relPath: 'a.py' }).reason, /off/);
  assert.match(route('learned', { relPath: 'a.py' }).reason, /no usable router/);
});

test('pinned routing serves every file from the pinned expert, else falls back to labels', () => {
  const r = route('pinned', { relPath: 'README.md', pinned: 'python' });
  assert.deepEqual(r.experts, [{ name: 'python', weight: 1 }]);
  assert.match(r.reason, /pinned expert python/);
  const none = route('pinned', { relPath: 'README.md', pinned: null, attached: new Set(['docs']) });
  assert.equal(none.experts[0]?.name, 'docs');
  assert.match(none.reason, /nothing pinned/);
});

const readme = '# Tool\n\nInstall it, then:\n\n```py\nimport json\nprint(json.dumps(';

test('auto routing: a fenced block goes to its language\'s domain; outside it, the file\'s', () => {
  const inBlock = route('auto', { relPath: 'README.md', prefix: readme });
  assert.deepEqual(inBlock.experts, [{ name: 'python', weight: 1 }]);
  assert.equal(inBlock.block?.line, 5);
  assert.match(inBlock.reason, /inside a ```py block \(from line 5\): domain python → expert python/);
  const closed = route('auto', { relPath: 'README.md', prefix: readme + '{}))\n```\n\nMore ' });
  assert.deepEqual(closed.experts, [{ name: 'docs', weight: 1 }]);
  assert.equal(closed.block, undefined);
  // Label routing is file-level, whatever the cursor is in.
  assert.deepEqual(route('label', { relPath: 'README.md', prefix: readme }).experts, [{ name: 'docs', weight: 1 }]);
});

test('auto routing: a block no domain holds goes to the router on the block, or else the file\'s label', () => {
  const rust = '# Notes\n\n```rust\nfn main() {\n';
  const routed = route('auto', { relPath: 'README.md', prefix: rust, router: ['python', 'docs', 'js'] });
  assert.equal(routed.byRouter, true);
  assert.equal(routed.routeFrom, rust.indexOf('```rust'));
  assert.match(routed.reason, /no domain holds its language.*from the block/);
  const noRouter = route('auto', { relPath: 'README.md', prefix: rust });
  assert.deepEqual(noRouter.experts, [{ name: 'docs', weight: 1 }]);
});

test('learned routing routes on the block inside one, on the prompt elsewhere; a file in no domain goes to the router', () => {
  const router = ['python', 'docs', 'js'];
  const inBlock = route('learned', { relPath: 'README.md', prefix: readme, router });
  assert.equal(inBlock.routeFrom, readme.indexOf('```py'));
  assert.match(inBlock.reason, /from the block/);
  const file = route('learned', { relPath: 'README.md', prefix: 'plain text', router });
  assert.equal(file.routeFrom, undefined);
  assert.match(file.reason, /from the prompt/);
  const stray = route('label', { relPath: 'main.go', router });
  assert.equal(stray.byRouter, true);
  assert.match(stray.reason, /main.go is in no domain/);
});

test('fences: tags and aliases, tildes, a longer closing fence, an opening fence on the cursor\'s line', () => {
  assert.equal(languageOfFenceTag('Python {.numberLines}', KNOWN_LANGUAGES), 'python');
  assert.equal(languageOfFenceTag('sh', KNOWN_LANGUAGES), 'shellscript');
  assert.equal(languageOfFenceTag('mermaid', KNOWN_LANGUAGES), undefined);
  assert.equal(blockAtCursor('text\n```js', 'markdown', KNOWN_LANGUAGES), undefined);
  assert.equal(blockAtCursor('text\n```js\n', 'markdown', KNOWN_LANGUAGES)?.language, 'javascript');
  assert.equal(blockAtCursor('~~~~\ncode\n```\nstill\n', 'markdown', KNOWN_LANGUAGES)?.tag, '');
  assert.equal(blockAtCursor('```\ncode\n`````\nafter', 'markdown', KNOWN_LANGUAGES), undefined);
  // An inline code span (backticks in the info string) opens nothing.
  assert.equal(blockAtCursor('```a ` b```\nmore\n', 'markdown', KNOWN_LANGUAGES), undefined);
  // In a code file, fences mean nothing.
  assert.equal(blockAtCursor('"""\n```py\n', 'python', KNOWN_LANGUAGES), undefined);
});

test('SQL in a code file\'s open triple-quoted or template string is a block; a docstring is not', () => {
  const py = 'def q(db):\n    return db.run("""\n        SELECT id, name\n        FROM users WHERE ';
  const b = blockAtCursor(py, 'python', KNOWN_LANGUAGES);
  assert.equal(b?.kind, 'sql-string');
  assert.equal(b?.language, 'sql');
  assert.equal(b?.line, 2);
  assert.equal(blockAtCursor('def f():\n    """Return the ', 'python', KNOWN_LANGUAGES), undefined);
  assert.equal(blockAtCursor('x = """SELECT 1"""\ny = ', 'python', KNOWN_LANGUAGES), undefined);
  assert.equal(blockAtCursor('const q = sql`\n  select * from t where ', 'typescript', KNOWN_LANGUAGES)?.language, 'sql');
});

test('pinning is one behaviour: pin sets pinned routing, unpin puts pinned back to labels and leaves other modes', () => {
  const ws = tempWorkspace({ '.moa/moa.json': JSON.stringify({ domains: [{ name: 'python', include: ['**/*.py'] }], routing: { mode: 'learned' } }) });
  try {
    const layout = workspaceLayout(ws.root);
    const mode = () => loadConfig(layout.configFile).config.routing.mode;
    assert.equal(pinExpert(layout, 'python').mode, 'pinned');
    assert.equal(mode(), 'pinned');
    assert.equal(readExpertState(layout).pinned, 'python');
    assert.equal(unpinExpert(layout).mode, 'label');
    assert.equal(mode(), 'label');
    assert.equal(readExpertState(layout).pinned, null);
    setRoutingMode(layout.configFile, 'auto');
    unpinExpert(layout);
    assert.equal(mode(), 'auto', 'a mode the user chose is left alone');
  } finally {
    ws.cleanup();
  }
});

test('the completion weights are set in the user\'s file with every other key as written, and an unknown type is refused', () => {
  const ws = tempWorkspace({ '.moa/moa.json': JSON.stringify({ domains: [{ name: 'python', include: ['**/*.py'] }], inference: { note: 'mine' }, routing: { mode: 'auto' } }) });
  try {
    const layout = workspaceLayout(ws.root);
    assert.equal(loadConfig(layout.configFile).config.inference.weights, 'f32', 'the default');
    setInferenceWeights(layout.configFile, 'int8');
    const { config, warnings } = loadConfig(layout.configFile);
    assert.deepEqual([config.inference.weights, config.routing.mode], ['int8', 'auto']);
    assert.ok(warnings.some((w) => /inference\.note: unknown key/.test(w)), 'the unknown key the user wrote is kept (and warned about)');
    assert.throws(() => setInferenceWeights(layout.configFile, 'fp8' as 'int8'), /unknown weight type "fp8"/);
  } finally {
    ws.cleanup();
  }
});
