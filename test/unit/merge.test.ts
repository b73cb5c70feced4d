import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeConfig, type MergeRequest } from '../../src/core/adapters/merge';
import { MoaError } from '../../src/core/util/errors';

const dirs = new Map([['python', '/w/.moa/experts/python'], ['sql', '/w/.moa/experts/sql']]);
const req = (over: Partial<MergeRequest>): MergeRequest => ({ name: 'code', experts: ['python', 'sql'], method: 'linear', ...over });

test('mergeConfig writes what moa_trainer merge reads: experts with their folders, one weight each', () => {
  const cfg = mergeConfig(req({ method: 'dare_ties', density: 0.4, weights: [0.5, 1.5], seed: 3 }), dirs, '/w/.moa/experts/code', 'builtin:moa-tiny');
  assert.deepEqual(cfg, {
    v: 1, name: 'code', out_dir: '/w/.moa/experts/code', method: 'dare_ties', weights: [0.5, 1.5],
    experts: [{ name: 'python', dir: '/w/.moa/experts/python' }, { name: 'sql', dir: '/w/.moa/experts/sql' }],
    base_model_name: 'builtin:moa-tiny', majority_sign_method: 'total', seed: 3, density: 0.4,
  });
  assert.deepEqual(mergeConfig(req({}), dirs, '/o', 'b')['weights'], [1, 1], 'weights default to 1 each');
  assert.equal(mergeConfig(req({ method: 'svd', svdRank: 12 }), dirs, '/o', 'b')['svd_rank'], 12);
});

test('mergeConfig refuses what the trainer would, naming the fix', () => {
  const refused = (over: Partial<MergeRequest>, pattern: RegExp) =>
    assert.throws(() => mergeConfig(req(over), dirs, '/o', 'b'), (e: unknown) => e instanceof MoaError && pattern.test(e.message), JSON.stringify(over));
  refused({ name: 'Code!' }, /not a valid expert name/);
  refused({ experts: ['python'] }, /at least two experts/);
  refused({ experts: ['python', 'python'] }, /named twice/);
  refused({ name: 'python' }, /one of the experts being merged/);
  refused({ experts: ['python', 'nope'] }, /no usable expert "nope"/);
  refused({ method: 'average' as MergeRequest['method'] }, /unknown merge method/);
  refused({ weights: [1] }, /1 weights for 2 experts/);
  refused({ weights: [1, Number.NaN] }, /weights for 2 experts/);
  refused({ method: 'ties' }, /needs --density/);
  refused({ method: 'ties_svd', density: 1.5 }, /needs --density/);
});
