// Property-based fuzzing of every parser that reads what a workspace, a trainer, a webview or the
// completion worker hands us. For each: it returns, or throws a MoaError that names the file; it
// never throws anything else, never hangs, never allocates what a header merely claims.
// MOA_FUZZ_RUNS sets the cases per parser (npm test: 10,000; npm run test:stress: 100,000).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseSafetensors } from '../../src/core/adapters/safetensors';
import { adapterConfigFrom } from '../../src/core/adapters/store';
import { routerInfoFrom } from '../../src/core/adapters/router';
import { expertStateFrom } from '../../src/core/adapters/state';
import { validateConfig } from '../../src/core/config/validate';
import { tokenizerFromJson } from '../../src/core/tokenizer/load';
import { JsonLineParser } from '../../src/core/trainer/jsonLines';
import { parseTrainerEvent } from '../../src/core/trainer/events';
import { readRunLog } from '../../src/core/trainer/runs';
import { parseFromWorker, parseToWorker } from '../../src/core/inference/workerProtocol';
import { MoaError } from '../../src/core/util/errors';
import { parseWebviewMessage } from '../../webview/dashboard/protocol';
import { parseInspectorMessage } from '../../webview/inspector/protocol';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

const RUNS = Number(process.env['MOA_FUZZ_RUNS'] ?? 10_000);
const FILE = '/ws/.moa/fuzzed-file.json';
const counts: Record<string, number> = {};
let ws: { root: string; cleanup: () => void };

before(() => (ws = tempWorkspace()));
after(() => {
  ws.cleanup();
  console.log(`fuzz cases per parser: ${JSON.stringify(counts)}`);
});

/** The contract every parser keeps: a value, or a MoaError naming `file`; nothing else escapes. */
function holds(name: string, file: string | undefined, fn: () => unknown): void {
  counts[name] = (counts[name] ?? 0) + 1;
  try {
    fn();
  } catch (e) {
    if (!(e instanceof MoaError)) throw new Error(`${name}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (file !== undefined && !e.message.includes(file)) throw new Error(`${name}: the error does not name the file: ${e.message}`);
  }
}

const run = <T>(arb: fc.Arbitrary<T>, check: (v: T) => void, runs = RUNS) => fc.assert(fc.property(arb, check), { numRuns: runs, seed: 20261202 });

/** JSON values biased towards the shapes our files have: numbers at the edges, nested objects, keys we read. */
function jsonish(keys: string[]): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 1, 1e308, -1e308, 2 ** 53, 0.5, NaN, '', '..', '../../../../dev/zero', '/dev/zero', 'LORA', 'q_proj', 'none', 'all'),
    fc.string(),
    fc.integer(),
    fc.double(),
  );
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: 5 }),
    object: fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string()), tie('value'), { maxKeys: 8 }),
  }));
  // Through JSON and back: what a parser of a file can actually be handed.
  return fc.oneof(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: keys.length }), value).map((v) => JSON.parse(JSON.stringify(v) ?? 'null') as unknown);
}

/** A well-formed safetensors file, then bytes of it changed: headers that lie about sizes, offsets, dtypes. */
const safetensorsBytes = fc
  .record({
    tensors: fc.array(fc.record({ name: fc.string({ maxLength: 12 }), dtype: fc.constantFrom('F32', 'F16', 'BF16', 'I8', 'X9'), shape: fc.array(fc.nat(6), { maxLength: 3 }) }), { maxLength: 4 }),
    meta: fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string(), fc.integer())), { nil: undefined }),
    lie: fc.array(fc.tuple(fc.nat(400), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    bigShape: fc.boolean(),
    cut: fc.option(fc.nat(400), { nil: undefined }),
  })
  .map(({ tensors, meta, lie, bigShape, cut }) => {
    const size: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I8: 1, X9: 1 };
    const header: Record<string, unknown> = meta ? { __metadata__: meta } : {};
    let offset = 0;
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1) * size[t.dtype]!;
      header[t.name] = { dtype: t.dtype, shape: bigShape ? [2 ** 40, 2 ** 20] : t.shape, data_offsets: [offset, offset + n] };
      offset += n;
    }
    const json = Buffer.from(JSON.stringify(header));
    const buf = Buffer.alloc(8 + json.length + offset);
    buf.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(buf, 8);
    for (const [at, byte] of lie) if (at < buf.length) buf[at] = byte;
    return cut === undefined ? buf : buf.subarray(0, Math.min(cut, buf.length));
  });

test('safetensors: lying headers, random bytes and truncations are refused with the file named', () => {
  run(fc.oneof(safetensorsBytes, fc.uint8Array({ maxLength: 64 })), (bytes) => holds('safetensors', 'adapter.safetensors', () => parseSafetensors('adapter.safetensors', bytes)));
});

test('adapter_config.json', () => {
  const keys = ['peft_type', 'r', 'lora_alpha', 'target_modules', 'bias', 'use_rslora', 'use_dora', 'rank_pattern', 'alpha_pattern', 'layers_to_transform', 'fan_in_fan_out'];
  run(jsonish(keys), (v) => holds('adapter_config.json', FILE, () => adapterConfigFrom(FILE, v)));
});

test('.moa/moa.json: the validator reports problems, it never throws', () => {
  const keys = ['version', 'baseModel', 'domains', 'lora', 'training', 'data', 'router', 'routing', 'name', 'include', 'exclude', 'languages', 'steps', 'mode', 'r', 'alpha', 'targetModules'];
  run(jsonish(keys), (v) => {
    counts['moa.json'] = (counts['moa.json'] ?? 0) + 1;
    const r = validateConfig(v);
    assert.ok(r.config !== undefined || r.errors.length > 0, 'a config that is not valid comes with its problems');
  });
});

test('router.json: its weights path never leads outside the router folder', () => {
  const keys = ['experts', 'weights', 'weights_sha256', 'accuracy', 'confusion', 'top_k', 'steps', 'run_id'];
  run(jsonish(keys), (v) =>
    holds('router.json', FILE, () => {
      const info = routerInfoFrom(FILE, (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}) as Record<string, unknown>, join(ws.root, 'router'), () => 'x');
      if (info.weightsFile) assert.ok(info.weightsFile.startsWith(join(ws.root, 'router') + '/'), info.weightsFile);
      if (info.status === 'ok') assert.ok(info.ngramBuckets! >= 1, 'an ok router has its decision table');
    }),
  );
});

test('state.json', () => {
  run(jsonish(['detached', 'pinned', 'v']), (v) => holds('state.json', FILE, () => expertStateFrom(FILE, v)));
});

/** `base` with `edits` applied: each replaces the value at a path (chosen by index) with another. */
function mutate(base: unknown, edits: [number[], unknown][]): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  for (const [path, value] of edits) {
    let node: unknown = copy;
    for (let depth = 0; depth < path.length; depth++) {
      if (typeof node !== 'object' || node === null) break;
      const keys = Object.keys(node);
      if (keys.length === 0) break;
      const key = keys[path[depth]! % keys.length]!;
      if (depth === path.length - 1 || typeof (node as Record<string, unknown>)[key] !== 'object') {
        (node as Record<string, unknown>)[key] = value;
        break;
      }
      node = (node as Record<string, unknown>)[key];
    }
  }
  return copy;
}

test('tokenizer.json: random objects, and a real byte-level BPE tokenizer with parts replaced', () => {
  const keys = ['model', 'moa', 'type', 'vocab', 'merges', 'added_tokens', 'pre_tokenizer', 'decoder', 'normalizer', 'bos_token_id', 'eos_token_id', 'vocab_size'];
  const real = JSON.parse(readFileSync(join(repoRoot(), 'test', 'fixtures', 'tokenizers', 'bytelevel-bpe', 'tokenizer.json'), 'utf8'));
  const edit = fc.tuple(fc.array(fc.nat(700), { minLength: 1, maxLength: 4 }), jsonish(keys));
  run(
    fc.oneof(jsonish(keys), fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => mutate(real, edits))),
    (v) =>
      holds('tokenizer.json', FILE, () => {
        const tok = tokenizerFromJson(FILE, v, undefined, { eos_token_id: 1 }, 'f');
        tok.decodeBytes(tok.encode('def f(x):\n  return x ▁ é'));
      }),
    Math.min(RUNS, 10_000),
  );
});

test('trainer JSON lines, cut into chunks anywhere', () => {
  const line = fc.oneof(
    jsonish(['v', 'type', 'stage', 'expert', 'step', 'steps', 'loss', 'lr', 'tokens_per_s', 'elapsed_s', 'message', 'stopped']).map((v) => JSON.stringify({ v: 1, ...(typeof v === 'object' && v !== null ? v : {}) })),
    fc.string(),
  );
  run(fc.tuple(fc.array(line, { maxLength: 8 }), fc.array(fc.nat(64), { maxLength: 6 })), ([lines, cuts]) => {
    counts['trainer lines'] = (counts['trainer lines'] ?? 0) + 1;
    const bytes = Buffer.from(lines.join('\n'));
    let events = 0;
    const p = new JsonLineParser({ onJson: (j) => void (parseTrainerEvent(j).ok && events++), onNoise: () => undefined }, 4096);
    let at = 0;
    for (const c of [...cuts, bytes.length]) {
      p.push(bytes.subarray(at, Math.min(bytes.length, at + c)));
      at = Math.min(bytes.length, at + c);
    }
    p.push(bytes.subarray(at));
    p.end();
    assert.ok(events <= lines.length);
  });
});

test('events.jsonl files: any content reads as events plus a count of unreadable lines', () => {
  const file = join(ws.root, 'events.jsonl');
  const content = fc.oneof(
    fc.array(jsonish(['v', 'type', 'stage', 'expert', 'step', 'loss', 'lr', 'tokens_per_s', 'elapsed_s', 'steps']).map((v) => JSON.stringify(typeof v === 'object' && v !== null ? { v: 1, type: 'step', ...v } : v)), { maxLength: 20 }).map((l) => l.join('\n')),
    fc.string({ maxLength: 400 }),
  );
  run(
    content,
    (text) => {
      counts['events.jsonl'] = (counts['events.jsonl'] ?? 0) + 1;
      writeFileSync(file, text);
      const log = readRunLog(file, 4);
      assert.ok(log.events.length + log.unreadable <= text.split('\n').length + 1);
    },
    Math.min(RUNS, 10_000),
  );
});

test('webview and worker messages: anything but the exact shapes is dropped', () => {
  const keys = ['type', 'id', 'relPath', 'prefix', 'suffix', 'opts', 'aborted', 'path', 'error', 'completion', 'message', 'hint', 'line', 'text', 'route', 'tokens', 'stopReason'];
  run(jsonish(keys), (v) => {
    for (const [name, parse] of [['dashboard message', parseWebviewMessage], ['inspector message', parseInspectorMessage], ['worker → host', parseFromWorker], ['host → worker', parseToWorker]] as const) {
      counts[name] = (counts[name] ?? 0) + 1;
      const m = (parse as (x: unknown) => { type: string } | undefined)(v);
      if (m) assert.equal(typeof m.type, 'string');
    }
  });
});
