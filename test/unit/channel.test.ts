import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pending, receiver } from '../../src/core/util/channel';

test('a receiver acts only on what its protocol parses, and names what it drops', () => {
  const got: number[] = [];
  const dropped: string[] = [];
  const parse = (v: unknown) => (typeof v === 'object' && v !== null && typeof (v as { n?: unknown }).n === 'number' ? (v as { n: number }).n : undefined);
  const on = receiver('probe', parse, (n) => got.push(n), (line) => dropped.push(line));
  on({ n: 1 });
  on({ n: 'x' });
  on(undefined);
  on({ n: 2 });
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(dropped, ['probe: dropped an invalid message {"n":"x"}', 'probe: dropped an invalid message undefined']);
});

test('pending requests are answered by id, once, and fail together with the side that held them', async () => {
  const p = new Pending<string, 'a' | 'b'>();
  const one = p.open('a');
  const two = p.open('a');
  const three = p.open('b');
  assert.notEqual(one.id, two.id);
  assert.ok(p.resolve(two.id, 'second'));
  assert.equal(p.resolve(two.id, 'again'), false, 'an id is answered once');
  assert.equal(p.resolve(999, 'stray'), false, 'an answer nobody asked for is refused');
  assert.equal(await two.answer, 'second');
  assert.ok(p.has('a') && p.has('b'));
  p.rejectAll('a', new Error('a is gone'));
  await assert.rejects(one.answer, /a is gone/);
  assert.ok(!p.has('a') && p.has('b'), "b's request still waits");
  assert.ok(p.reject(three.id, new Error('no')));
  await assert.rejects(three.answer, /no/);
});
