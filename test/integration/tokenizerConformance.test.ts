// Tokenizer conformance (issue #16): MoA's tokenizer.json reader against the Python `tokenizers`
// package (the Rust library transformers uses), live, on strings chosen to break tokenizers:
// NFD and NFC forms, emoji and other 4-byte characters, runs of spaces and tabs, CRLF, long
// numbers, added and special tokens written in the text, and a leading space. Ids must be equal,
// and decoding our ids must give the Rust library's text with special tokens skipped (what a
// completion shows: a FIM marker or <unk> is never ghost text).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/core/tokenizer/load';
import { choosePython } from '../../src/core/trainer/python';
import { repoRoot } from '../helpers/tmp';

const root = repoRoot();
const fixtures = join(root, 'test', 'fixtures', 'tokenizers');

const SAMPLES = [
  'def load(path):\n    return open(path).read()\n',
  ' leading space and  two   spaces\tand a tab',
  'Cafe\u0301 vs Caf\u00e9 (NFD vs NFC), Ångström, naïve',
  'emoji 🙂🚀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, CJK 漢字かな, Greek αβγ',
  'windows\r\nline\r\nends\r\n',
  'numbers 1234567890 3.14159 -42 1e-9',
  '<fim_prefix>def f(<fim_suffix>)<fim_middle>x',
  '<|endoftext|> then text </s> <s> <unk>',
  '    \n\n\n    indented after blank lines',
  '',
];

const REFERENCE = `
import json, sys
from tokenizers import Tokenizer
req = json.load(sys.stdin)
out = {}
for name in req["tokenizers"]:
    tok = Tokenizer.from_file(req["dir"] + "/" + name + "/tokenizer.json")
    rows = []
    for s in req["samples"]:
        ids = tok.encode(s, add_special_tokens=False).ids
        rows.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
    out[name] = rows
print(json.dumps(out))
`;

test('ids and decoded text equal the tokenizers package on hostile strings, for every fixture tokenizer', () => {
  const names = ['bytelevel-bpe', 'sentencepiece-bpe', 'starcoder-fim-bpe'];
  const r = spawnSync(choosePython(root).command, ['-c', REFERENCE], { input: JSON.stringify({ dir: fixtures, tokenizers: names, samples: SAMPLES }), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ref = JSON.parse(r.stdout) as Record<string, { ids: number[]; decoded: string }[]>;
  const rows: string[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const tok = loadTokenizer(join(fixtures, name));
    let same = 0;
    SAMPLES.forEach((s, i) => {
      const ids = Array.from(tok.encode(s));
      const want = ref[name]![i]!;
      const text = Buffer.from(tok.decodeBytes(ids)).toString('utf8');
      if (ids.join() !== want.ids.join()) problems.push(`${name} ${JSON.stringify(s).slice(0, 40)}: ids ${ids.slice(0, 12)}… ≠ ${want.ids.slice(0, 12)}…`);
      else if (text !== want.decoded) problems.push(`${name} ${JSON.stringify(s).slice(0, 40)}: decoded ${JSON.stringify(text)} ≠ ${JSON.stringify(want.decoded)}`);
      else same++;
    });
    rows.push(`${name}: ${same} of ${SAMPLES.length} samples identical (ids and decoded text)`);
  }
  console.log(rows.join('\n'));
  assert.deepEqual(problems, []);
});
