import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { gramBuckets, ngramExpert, NGRAM_HASH } from '../../src/core/routing/ngram';
import { loadLearnedRouter, readRouterInfo, routerInfoFrom } from '../../src/core/adapters/router';
import { writeSafetensorsF32 } from '../../src/core/adapters/safetensors';
import { writeJsonAtomic } from '../../src/core/util/atomic';
import { tempWorkspace } from '../helpers/tmp';

// The same ids and buckets are asserted in trainer/tests/test_ngram_router.py, against the
// trainer's hash and a plain reference of it: the two languages must pick the same buckets.
const SHARED_IDS = [104, 101, 108, 108, 111, 258, 70000, 0];
const SHARED_BUCKETS = [58520, 59327, 40660, 40660, 58413, 24824, 22105, 62992, 47476, 57030, 30620, 32725, 49449,
  24682, 48221, 38353, 416, 51910, 8967, 26925, 56216, 44021, 27118, 27023, 1764, 55136];

test('the n-gram hash picks the trainer\'s buckets', () => {
  assert.deepEqual(gramBuckets(SHARED_IDS, 1 << 16), SHARED_BUCKETS);
  assert.deepEqual(gramBuckets([], 1 << 16), []);
  assert.equal(gramBuckets([1, 2, 3], 1 << 10).length, 3 + 2 + 1);
});

test('the table picks the argmax of the mean of the prompt\'s rows plus the bias', () => {
  const buckets = 1 << 4;
  const weight = new Float32Array(buckets * 2);
  // Every bucket of prompt [5, 6] votes for expert 1; the bias favours expert 0 a little.
  for (const b of gramBuckets([5, 6], buckets)) weight[b * 2 + 1] = 3;
  const table = { buckets, experts: 2, weight, bias: Float32Array.of(0.5, 0) };
  assert.equal(ngramExpert(table, [5, 6]), 1);
  assert.equal(ngramExpert(table, []), 0); // no n-grams: the bias alone
});

test('router.json with an n-gram decision: its table is loaded and checked, a bad block makes the router broken', () => {
  const ws = tempWorkspace();
  const dir = join(ws.root, 'router');
  mkdirSync(dir, { recursive: true });
  const E = 2;
  const tensors = new Map([
    ['ngram.weight', { shape: [16, E], data: new Float32Array(16 * E).fill(0.25) }],
    ['ngram.bias', { shape: [E], data: Float32Array.of(0, 1) }],
  ]);
  writeSafetensorsF32(join(dir, 'router.safetensors'), tensors);
  const good = { experts: ['a', 'b'], top_k: 1, decision: 'ngram', ngram: { orders: [1, 2, 3, 4], buckets: 16, hash: NGRAM_HASH } };
  writeJsonAtomic(join(dir, 'router.json'), good);
  const info = readRouterInfo(dir)!;
  assert.equal(info.status, 'ok');
  const router = loadLearnedRouter(dir, info);
  assert.equal(router.table.buckets, 16);
  assert.deepEqual(router.experts, ['a', 'b']);
  assert.equal(ngramExpert(router.table, [1, 2, 3]), 1);
  // A table of the wrong size is refused naming the file.
  assert.throws(() => loadLearnedRouter(dir, { ...info, ngramBuckets: 32 }), /router\.safetensors: ngram\.weight must be \[32, 2\]/);
  const file = join(dir, 'router.json');
  const broken = (j: Record<string, unknown>) => routerInfoFrom(file, j, dir, () => 'x');
  assert.match(broken({ ...good, ngram: { ...good.ngram, hash: 'md5' } }).reason!, /router\.json: ngram must have hash/);
  assert.match(broken({ ...good, ngram: { ...good.ngram, buckets: 12 } }).reason!, /power of two/);
  assert.match(broken({ ...good, decision: 'vote' }).reason!, /unknown decision "vote"/);
  // A router.json from before the n-gram decision is broken, saying how to refit it.
  assert.match(broken({ experts: ['a', 'b'] }).reason!, /router\.json: written by an older trainer, without the n-gram decision; run "moa train --stages router"/);
});
