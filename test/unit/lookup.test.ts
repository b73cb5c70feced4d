import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lookupDraft, verifyDraft } from '../../src/core/inference/lookup';

const ids = (s: string) => [...Buffer.from(s)];
const text = (xs: number[]) => Buffer.from(xs).toString();

test('lookupDraft continues the latest earlier occurrence of the longest suffix', () => {
  // "abc" occurred twice before; the later one (followed by "Y") wins.
  assert.equal(text(lookupDraft(ids('abcX--abcY--abc'), 3)), 'Y--');
  // A longer suffix match wins over a more recent shorter one.
  assert.equal(text(lookupDraft(ids('wxyz1 .. xyz2 .. wxyz'), 1, 8, 3)), '1');
  assert.equal(text(lookupDraft(ids('for x in xs:\n    f(x)\nfor x in xs:\n'), 6)), '    f(');
});

test('lookupDraft: at most max tokens, never past the context, nothing without a match', () => {
  assert.deepEqual(lookupDraft(ids('abcdabc'), 10), ids('dabc'));
  assert.deepEqual(lookupDraft(ids('abcdabc'), 2), ids('da'));
  assert.deepEqual(lookupDraft(ids('abcdefgh'), 4), []);
  assert.deepEqual(lookupDraft(ids('abcabc'), 0), []);
  assert.deepEqual(lookupDraft([], 4), []);
  // A run of one repeated token drafts more of it (overlapping occurrences count).
  assert.deepEqual(lookupDraft(ids('aaaa'), 2), ids('a'));
  // Suffixes shorter than the minimum are not looked up: "bc" alone is too weak a cue.
  assert.deepEqual(lookupDraft(ids('xbcyzbc'), 4, 8, 3), []);
});

test('verifyDraft keeps the agreeing prefix and adds the model\'s own next pick', () => {
  const model = [5, 6, 9, 1, 2]; // what the model picks after 0, 1, 2… drafted tokens
  const calls: number[] = [];
  const pick = (j: number) => (calls.push(j), model[j]!);
  assert.deepEqual(verifyDraft([5, 6, 7, 8], pick), [5, 6, 9]); // third drafted token rejected
  assert.deepEqual(calls, [0, 1, 2], 'no pick after the first disagreement');
  assert.deepEqual(verifyDraft([5, 6, 9, 1], (j) => model[j]!), [5, 6, 9, 1, 2]); // all kept, plus one
  assert.deepEqual(verifyDraft([], (j) => model[j]!), [5]); // no draft: one token, as plain decoding
  assert.deepEqual(verifyDraft([4], (j) => model[j]!), [5]);
});
