import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lineOfJsonError, lineOfJsonPath, parseJsonPath } from '../../src/core/util/jsonLocate';

const text = `{
  "version": 1,
  "domains": [
    { "name": "python", "include": ["**/*.py"] },
    {
      "name": "docs [a,b]",
      "include": ["**/*.md"]
    }
  ],
  "training": {
    "lora": { "r": 8 },
    "steps": 900000
  }
}
`;

test('a validator\'s JSON path is found on its line, or the deepest part of it that exists', () => {
  assert.deepEqual(parseJsonPath('$.domains[1].name'), ['domains', 1, 'name']);
  assert.equal(lineOfJsonPath(text, '$.training.steps'), 12);
  assert.equal(lineOfJsonPath(text, '$.domains[1].name'), 6, 'brackets and commas inside strings do not count');
  assert.equal(lineOfJsonPath(text, '$.domains[0].include'), 4);
  assert.equal(lineOfJsonPath(text, '$.training.lora.alpha'), 11, 'a missing key: the object that should hold it');
  assert.equal(lineOfJsonPath(text, '$.router.steps'), 1, 'a missing section: the top');
  assert.equal(lineOfJsonPath(text, '$'), 1);
  assert.equal(lineOfJsonPath('{"a": {"b": ', '$.a.b'), 1, 'text that is not JSON: the top, never a throw');
});

test('where a text stops being JSON, as JSON.parse refuses it', () => {
  const cases: [string, number][] = [['{\n  "a": 1,\n  "b": }\n', 3], ['{\n  "a": 1\n  "b": 2\n}', 3], ['{"a": [1, 2,]}', 1], ['{\n"a": "x\ty"}', 2], ['{"a": 1}\n\nx', 3], ['\n\n{"a": tru}', 3], ['{"a": 01}', 1]];
  for (const [bad, line] of cases) {
    assert.throws(() => JSON.parse(bad), SyntaxError, 'JSON.parse agrees it is not JSON');
    assert.equal(lineOfJsonError(bad), line, JSON.stringify(bad));
  }
  assert.equal(lineOfJsonError('['.repeat(200_000)), undefined, 'nesting past the stack: no line, no throw');
  assert.equal(lineOfJsonPath('['.repeat(200_000), '$.a'), 1);
  for (const good of [text, '[]', '"x"', ' {"a": [1.5e-3, -0, true, null, "\\u00e9\\n"]} ']) {
    JSON.parse(good);
    assert.equal(lineOfJsonError(good), undefined, good);
  }
});

test('the walker agrees with JSON.parse on what is JSON, over 3,000 edits of a config', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const alphabet = '{}[]",:. -+eE0123456789truefalsn\\\n\tx';
  for (let k = 0; k < 3000; k++) {
    let t = text;
    for (let e = 1 + rand(3); e > 0; e--) {
      const at = rand(t.length + 1);
      t = rand(2) ? t.slice(0, at) + alphabet[rand(alphabet.length)] + t.slice(at) : t.slice(0, at) + t.slice(at + 1);
    }
    let parses = true;
    try {
      JSON.parse(t);
    } catch {
      parses = false;
    }
    assert.equal(lineOfJsonError(t) === undefined, parses, JSON.stringify(t));
  }
});
