import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonLineParser } from '../../src/core/trainer/jsonLines';
import { parseTrainerEvent } from '../../src/core/trainer/events';

function collect(maxLine?: number) {
  const json: unknown[] = [];
  const noise: string[] = [];
  const p = new JsonLineParser({ onJson: (v) => json.push(v), onNoise: (l) => noise.push(l) }, maxLine);
  return { p, json, noise };
}

test('lines split across chunks, even inside a UTF-8 character, are reassembled', () => {
  const { p, json } = collect();
  const bytes = Buffer.from('{"v":1,"type":"eval","expert":"é","domain":"d","stage":"s","loss":1}\n{"a":2}\n');
  for (let i = 0; i < bytes.length; i += 3) p.push(bytes.subarray(i, i + 3));
  assert.deepEqual(json, [{ v: 1, type: 'eval', expert: 'é', domain: 'd', stage: 's', loss: 1 }, { a: 2 }]);
});

test('noise, broken JSON, invalid UTF-8 and CRLF never throw', () => {
  const { p, json, noise } = collect();
  p.push(Buffer.from('Loading weights...\r\n{not json}\n'));
  p.push(new Uint8Array([0xff, 0xfe, 0x0a]));
  p.push(Buffer.from('{"x":1}\r\n\n'));
  p.push(Buffer.from('{"tail":true}'));
  p.end();
  assert.deepEqual(json, [{ x: 1 }, { tail: true }]);
  assert.equal(noise[0], 'Loading weights...');
  assert.equal(noise[1], '{not json}');
  assert.equal(noise.length, 3);
});

test('an over-long line is dropped and the stream goes on', () => {
  const { p, json, noise } = collect(1024);
  p.push(Buffer.from('{"big":"' + 'x'.repeat(5000)));
  p.push(Buffer.from('"}\n{"ok":1}\n'));
  assert.deepEqual(json, [{ ok: 1 }]);
  assert.match(noise[0]!, /longer than 1024 bytes/);
});

test('a 10 MB line within the limit is parsed', () => {
  const { p, json } = collect();
  const big = 'y'.repeat(10 * 1024 * 1024);
  p.push(Buffer.from(`{"v":1,"s":"${big}"}\n`));
  assert.equal((json[0] as { s: string }).s.length, big.length);
});

test('events are checked against the protocol', () => {
  assert.equal(parseTrainerEvent({ v: 1, type: 'step', stage: 'experts', expert: 'a', step: 1, steps: 2, loss: 3, lr: 0.1, tokens_per_s: 10, elapsed_s: 1 }).ok, true);
  const diverged = parseTrainerEvent({ v: 1, type: 'step', stage: 'experts', expert: 'a', step: 1, steps: 2, loss: null, lr: 0.1, tokens_per_s: 10, elapsed_s: 1 });
  assert.ok(diverged.ok && diverged.event.type === 'step' && Number.isNaN(diverged.event.loss), 'a null (diverged) loss arrives as NaN');
  const bad = parseTrainerEvent({ v: 1, type: 'step', stage: 'experts', expert: 'a', step: '1' });
  assert.equal(bad.ok, false);
  assert.match((bad as { problem: string }).problem, /"step"/);
  assert.match((parseTrainerEvent({ v: 2, type: 'done', stopped: false }) as { problem: string }).problem, /protocol version/);
  assert.match((parseTrainerEvent({ v: 1, type: 'party' }) as { problem: string }).problem, /unknown event type/);
  const err = parseTrainerEvent({ v: 1, type: 'error', message: 'boom' });
  assert.ok(err.ok && err.event.type === 'error' && err.event.hint === null);
});
