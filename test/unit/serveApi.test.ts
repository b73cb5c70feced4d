import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, errorBody, parseCompletionRequest, streamable } from '../../src/core/serve/openaiApi';
import { isLoopback } from '../../src/core/serve/server';

const models = ['moa', 'base', 'python'];

test('a completions body takes OpenAI\'s defaults and our routing fields', () => {
  assert.deepEqual(parseCompletionRequest({ model: 'moa', prompt: 'x' }, models), {
    model: 'moa', prompt: 'x', suffix: '', maxTokens: 16, temperature: 1, topP: 1, stop: [], stream: false,
  });
  const r = parseCompletionRequest({ model: 'python', prompt: ['def f('], suffix: ')', max_tokens: 64, temperature: 0, top_p: 0.9, stop: '\n', stream: true, seed: 7, file: 'src/a.py', language: 'python', n: 1, logprobs: null }, models);
  assert.deepEqual(r, { model: 'python', prompt: 'def f(', suffix: ')', maxTokens: 64, temperature: 0, topP: 0.9, stop: ['\n'], stream: true, seed: 7, file: 'src/a.py', language: 'python' });
  // Continue's autocomplete sends all its stop words (more than OpenAI's 4) to a local host.
  const stops = ['\n\n', '\r\n\r\n', '/src/', '#- coding: utf-8', '```', '\ndef', '\nclass', '\n\"\"\"#', '<fim_prefix>', '<fim_suffix>', '<fim_middle>', '<|endoftext|>', ''];
  assert.deepEqual(parseCompletionRequest({ model: 'moa', prompt: 'x', max_tokens: 128, temperature: 0.01, stop: stops, stream: true }, models).stop, stops.slice(0, -1), 'an empty stop string is dropped, not obeyed');
});

test('what cannot be served is refused with the status and field an OpenAI client expects', () => {
  const refused = (body: unknown, status: number, param: string | null, pattern: RegExp) =>
    assert.throws(() => parseCompletionRequest(body, models), (e: unknown) => e instanceof ApiError && e.status === status && e.param === param && pattern.test(e.message), JSON.stringify(body));
  refused([], 400, null, /JSON object/);
  refused({ prompt: 'x' }, 400, 'model', /model is required/);
  refused({ model: 'gpt-4', prompt: 'x' }, 404, 'model', /does not exist here; models: moa, base, python/);
  refused({ model: 'moa', prompt: [1, 2, 3] }, 400, 'prompt', /token-id/);
  refused({ model: 'moa', prompt: 'x', n: 3 }, 400, 'n', /must be 1/);
  refused({ model: 'moa', prompt: 'x', logprobs: 5 }, 400, 'logprobs', /not supported/);
  refused({ model: 'moa', prompt: 'x', echo: true }, 400, 'echo', /not supported/);
  refused({ model: 'moa', prompt: 'x', stop: Array.from({ length: 65 }, (_, i) => String(i)) }, 400, 'stop', /up to 64/);
  refused({ model: 'moa', prompt: 'x', stop: ['x'.repeat(257)] }, 400, 'stop', /at most 256/);
  refused({ model: 'moa', prompt: 'x', max_tokens: 0 }, 400, 'max_tokens', /\[1, 4096\]/);
  refused({ model: 'moa', prompt: 'x', max_tokens: 2.5 }, 400, 'max_tokens', /integer/);
  refused({ model: 'moa', prompt: 'x', temperature: 3 }, 400, 'temperature', /\[0, 2\]/);
  refused({ model: 'moa', prompt: 'x', file: '../etc/passwd' }, 400, 'file', /inside the workspace/);
  refused({ model: 'moa', prompt: 'x', file: '/etc/passwd' }, 400, 'file', /inside the workspace/);
  assert.deepEqual(errorBody(new ApiError(429, 'busy')), { error: { message: 'busy', type: 'rate_limit_error', param: null, code: null } });
});

test('streaming holds back what a stop string or an unfinished character may still change', () => {
  assert.equal(streamable('hello wor', ['world']), 'hello ');
  assert.equal(streamable('hello', ['\n']), 'hello');
  assert.equal(streamable('caf\uFFFD', []), 'caf');
  assert.equal(streamable('a\nb', ['\n']), 'a\nb', 'a whole stop string is cut by the stop rule, not held');
});

test('only loopback hosts are served without an API key', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '192.168.1.2', '::', 'example.com']) assert.ok(!isLoopback(h), h);
});
