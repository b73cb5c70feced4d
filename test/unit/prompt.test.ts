import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPrompt, detectFim, splitBudget, FIM_SUFFIX_SHARE, type FimTokens } from '../../src/core/inference/prompt';
import { loadTokenizer } from '../../src/core/tokenizer/load';
import { ByteTokenizer } from '../../src/core/tokenizer/bytes';
import type { Tokenizer } from '../../src/core/tokenizer/types';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const fixtures = join(repoRoot(), 'test', 'fixtures', 'tokenizers');
const qwen = () => loadTokenizer(join(fixtures, 'bytelevel-bpe'));
const starcoder = () => loadTokenizer(join(fixtures, 'starcoder-fim-bpe'));
const id = (tok: Tokenizer, t: string) => tok.tokenToId!(t)!;

// Code long enough that every budget below cuts both sides; varied so BPE merges differ along it.
const code = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => `def ${tag}_${i}(path, limit=${i % 7}):\n    with open(path) as h:  # Ünï ${i}\n        return h.read()[:limit]\n\n`).join('');

test('FIM tokens are found by the names each family uses, with that family\'s stop tokens', () => {
  const q = qwen();
  const fq = detectFim(q);
  assert.deepEqual(fq && { family: fq.family, prefix: fq.prefix, suffix: fq.suffix, middle: fq.middle }, {
    family: 'qwen', prefix: id(q, '<|fim_prefix|>'), suffix: id(q, '<|fim_suffix|>'), middle: id(q, '<|fim_middle|>'),
  });
  const s = starcoder();
  const fs = detectFim(s)!;
  assert.equal(fs.family, 'starcoder');
  assert.deepEqual([fs.prefix, fs.suffix, fs.middle], [id(s, '<fim_prefix>'), id(s, '<fim_suffix>'), id(s, '<fim_middle>')]);
  assert.ok(fs.stop.includes(id(s, '<fim_pad>')) && fs.stop.includes(id(s, '<file_sep>')), 'padding and file separator end a middle');
  assert.ok(!fs.stop.includes(s.eosId), 'EOS is the engine\'s own stop, not repeated here');
});

test('no FIM tokens: a byte tokenizer with no added sentinels and a BPE tokenizer without them get prefix-only prompts; moa-tiny puts the suffix first', () => {
  assert.equal(detectFim(new ByteTokenizer()), undefined);
  const tiny = loadTokenizer(join(repoRoot(), 'models', 'moa-tiny'));
  // Suffix first (Code Llama's SPM), as its tokenizer.json says: the prefix runs straight into the middle.
  assert.deepEqual(Array.from(buildPrompt(tiny, 'ab', 'c', 64).ids), [256, 258, 260, 0x63, 259, 0x61, 0x62]);
  const psm = { ...detectFim(tiny)!, layout: 'psm' as const };
  assert.deepEqual(Array.from(buildPrompt(tiny, 'ab', 'c', 64, psm).ids), [256, 258, 0x61, 0x62, 260, 0x63, 259]);
  const ws = tempWorkspace();
  try {
    // The same BPE with its FIM markers renamed: only the names tell FIM support apart.
    const raw = readFileSync(join(fixtures, 'bytelevel-bpe', 'tokenizer.json'), 'utf8');
    writeFileSync(join(ws.root, 'tokenizer.json'), raw.split('<|fim_').join('<|xim_'));
    for (const f of ['tokenizer_config.json', 'config.json']) copyFileSync(join(fixtures, 'bytelevel-bpe', f), join(ws.root, f));
    const plain = loadTokenizer(ws.root);
    assert.equal(detectFim(plain), undefined);
    const p = buildPrompt(plain, 'x = 1\ny = ', '\nprint(y)\n', 512);
    assert.equal(p.fim, undefined);
    assert.deepEqual(Array.from(p.ids), Array.from(plain.encode('x = 1\ny = ')), 'no BOS for this tokenizer, no suffix, no markers');
    assert.equal(p.suffixTokens, 0);
  } finally {
    ws.cleanup();
  }
  const p = buildPrompt(new ByteTokenizer(), 'ab', 'cd', 512);
  assert.deepEqual(Array.from(p.ids), [256, 0x61, 0x62], 'BOS then the prefix; the suffix is not used');
});

test('an unbudgeted FIM prompt is exactly what Hugging Face tokenizers (Rust) encode for the marker-delimited text', () => {
  for (const [dir, tok] of [['bytelevel-bpe', qwen()], ['starcoder-fim-bpe', starcoder()]] as const) {
    const cases = JSON.parse(readFileSync(join(fixtures, dir, 'fim-reference.json'), 'utf8')) as { prefix: string; suffix: string; ids: number[] }[];
    assert.ok(cases.length >= 3);
    for (const c of cases) {
      const p = buildPrompt(tok, c.prefix, c.suffix, 100_000);
      assert.deepEqual(Array.from(p.ids), c.ids, `${dir}: ${JSON.stringify(c)}`);
      assert.equal(p.prefixTokens + p.suffixTokens + 3, c.ids.length);
    }
  }
});

test('splitBudget: the suffix takes at most its share, and either side\'s unused part goes to the other', () => {
  assert.deepEqual(splitBudget(100, 500, 500), { prefix: 75, suffix: 25 });
  assert.deepEqual(splitBudget(100, 500, 10), { prefix: 90, suffix: 10 }, 'a short suffix leaves the rest to the prefix');
  assert.deepEqual(splitBudget(100, 30, 500), { prefix: 30, suffix: 70 }, 'a short prefix leaves the rest to the suffix');
  assert.deepEqual(splitBudget(100, 20, 30), { prefix: 20, suffix: 30 }, 'both fit whole');
  assert.deepEqual(splitBudget(0, 5, 5), { prefix: 0, suffix: 0 });
  assert.deepEqual(splitBudget(-3, 5, 5), { prefix: 0, suffix: 0 });
  assert.deepEqual(splitBudget(10, 100, 100, 0.5), { prefix: 5, suffix: 5 });
});

test('a FIM prompt cut to the budget keeps the prefix nearest the cursor and the start of the suffix', () => {
  const tok = qwen();
  const fim = detectFim(tok)!;
  const prefix = code(200, 'before');
  const suffix = code(200, 'after');
  const full = { p: tok.encode(prefix), s: tok.encode(suffix) };
  for (const budget of [16, 64, 257, 1000]) {
    const p = buildPrompt(tok, prefix, suffix, budget);
    assert.equal(p.ids.length, budget, `budget ${budget} filled exactly`);
    const avail = budget - 3;
    assert.equal(p.suffixTokens, Math.floor(avail * FIM_SUFFIX_SHARE));
    assert.equal(p.prefixTokens, avail - p.suffixTokens);
    const ids = Array.from(p.ids);
    assert.equal(ids[0], fim.prefix);
    assert.equal(ids[1 + p.prefixTokens], fim.suffix);
    assert.equal(ids[ids.length - 1], fim.middle);
    // Encoding only a window at each end gives the same tokens as encoding the whole text.
    assert.deepEqual(ids.slice(1, 1 + p.prefixTokens), Array.from(full.p.subarray(full.p.length - p.prefixTokens)), `prefix tail at ${budget}`);
    assert.deepEqual(ids.slice(2 + p.prefixTokens, -1), Array.from(full.s.subarray(0, p.suffixTokens)), `suffix head at ${budget}`);
  }
  const short = buildPrompt(tok, prefix, 'pass\n', 100);
  assert.equal(short.suffixTokens, tok.encode('pass\n').length, 'a short suffix is kept whole');
  assert.equal(short.prefixTokens, 97 - short.suffixTokens, 'and the prefix takes the rest');
  assert.equal(buildPrompt(tok, prefix, suffix, 2).ids.length, 3, 'below the markers\' count: markers only, no text');
});

test('FIM markers typed in the document are dropped, so the text cannot restructure the prompt', () => {
  const tok = qwen();
  const fim = detectFim(tok)!;
  const p = buildPrompt(tok, 'a<|fim_middle|>b', 'c<|fim_prefix|>d', 512);
  const ids = Array.from(p.ids);
  assert.equal(ids.filter((x) => x === fim.middle).length, 1);
  assert.equal(ids.filter((x) => x === fim.prefix).length, 1);
  // The text on either side of a dropped marker is still encoded as two pieces, as the document is.
  assert.deepEqual(ids, [fim.prefix, ...tok.encode('a'), ...tok.encode('b'), fim.suffix, ...tok.encode('c'), ...tok.encode('d'), fim.middle]);
});

test('prefix-only cut: BOS counts toward the budget, the window encoding matches the whole-text tail, no character is split', () => {
  const tok = new ByteTokenizer();
  const text = code(300, 'x');
  const bytes = Buffer.from(text);
  for (const budget of [300, 301, 302, 303]) {
    const p = buildPrompt(tok, text, 'ignored', budget);
    assert.equal(p.ids[0], 256);
    const kept = p.ids.length - 1;
    // At most 3 bytes of a split character are skipped; the rest of the budget is used.
    assert.ok(kept <= budget - 1 && kept >= budget - 4, `budget ${budget}: kept ${kept}`);
    assert.deepEqual(Array.from(p.ids.subarray(1)), Array.from(bytes.subarray(bytes.length - kept)));
    assert.ok(p.ids[1]! < 0x80 || p.ids[1]! >= 0xc0, 'the kept text starts on a character boundary');
  }
  // 'é' is 2 bytes and '€' 3: the last 4 bytes start inside 'é', so the cut moves to '€'.
  assert.deepEqual(Array.from(buildPrompt(tok, 'aé€', '', 5).ids), [256, ...Buffer.from('€')]);
});

test('with a BOS token the FIM prompt starts with it, and a byte-level suffix cut never ends inside a character', () => {
  const tok = new ByteTokenizer();
  const fim: FimTokens = { family: 'test', layout: 'psm', prefix: 300, suffix: 301, middle: 302, stop: [300, 301, 302] };
  // budget 12 = BOS + 3 markers + 8 text tokens: the suffix may take 2, the prefix 6.
  const p = buildPrompt(tok, 'abcdefgh', 'aé€', 12, fim);
  assert.deepEqual(Array.from(p.ids), [256, 300, ...Buffer.from('cdefgh'), 301, 0x61, 302], '"aé" would be 3 bytes: only "a" fits whole');
  assert.equal(p.suffixTokens, 1);
});
