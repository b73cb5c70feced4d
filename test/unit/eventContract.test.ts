import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_TYPES, eventContractProblems } from '../../src/core/trainer/eventSchema';
import { parseTrainerEvent } from '../../src/core/trainer/events';

const step = { v: 1, type: 'step', stage: 'experts', expert: 'a', step: 1, steps: 2, loss: 1.0, lr: 0.1, tokens_per_s: 1.0, elapsed_s: 1.0 };

test('the event contract: every declared type, and what breaks it', () => {
  assert.deepEqual([...EVENT_TYPES].sort(), ['artifact', 'checkpoint', 'done', 'error', 'eval', 'expert_done', 'hello', 'plan', 'step']);
  assert.deepEqual(eventContractProblems(step), []);
  assert.deepEqual(eventContractProblems({ ...step, loss: null }), [], 'a diverged loss is null');
  assert.match(eventContractProblems({ ...step, surprise: 1 }).join(), /field "surprise" is not declared/);
  assert.match(eventContractProblems({ v: 1, type: 'eval', stage: 'experts', expert: 'a', domain: 'a' }).join(), /missing required field "loss"/);
  assert.match(eventContractProblems({ v: 1, type: 'plan', stage: 'experts', experts: ['a', 3], steps: 2 }).join(), /plan\.experts\[1\]: 3, expected string/);
  assert.match(eventContractProblems({ v: 1, type: 'checkpoint', path: 'x', step: 1.5 }).join(), /checkpoint\.step: 1\.5, expected integer/);
  assert.match(eventContractProblems({ v: 1, type: 'artifact', kind: 'pickle', name: 'x', path: 'y' }).join(), /"pickle" is not one of/);
  assert.match(eventContractProblems({ v: 1, type: 'launch' }).join(), /not an event of a declared type/);
  assert.match(eventContractProblems({ v: 1, type: 'eval', stage: 'router', expert: 'router', domain: 'a', loss: 1, routed_to: { a: 'most' } }).join(), /eval\.routed_to\.a/);
});

test('the parser insists on the schema\'s required fields and passes the rest through', () => {
  assert.equal(parseTrainerEvent(step).ok, true);
  const noLoss = parseTrainerEvent({ v: 1, type: 'eval', stage: 'experts', expert: 'a', domain: 'a' });
  assert.equal(noLoss.ok, false);
  assert.match(!noLoss.ok ? noLoss.problem : '', /eval event: field "loss" missing/);
  const badType = parseTrainerEvent({ v: 1, type: 'expert_done', stage: 's', expert: 'a', step: '3', reason: 'patience' });
  assert.equal(badType.ok, false);
  // A newer trainer's extra field does not break an older editor.
  assert.equal(parseTrainerEvent({ ...step, from_the_future: true }).ok, true);
});
