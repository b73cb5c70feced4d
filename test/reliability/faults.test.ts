// Fault injection against the real CLI and the real trainer: kill -9 at many points of a run
// (stage 1, stage 2, checkpoint, expert and router writes, the ONNX export), SIGKILL of the CLI,
// a full disk, trainers that misbehave, commands at the same time. After each: experts and the
// router whole, the run's status true, nothing left behind, and --resume finishes.
// npm test kills at the first write of each kind and a spread of the others; MOA_FAULT_POINTS=all
// (npm run test:stress) kills at every rename.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listExperts } from '../../src/core/adapters/store';
import { readRouterInfo } from '../../src/core/adapters/router';
import { workspaceLayout } from '../../src/core/paths';
import { listRuns, runStatus } from '../../src/core/trainer/runs';
import { pidAlive } from '../../src/core/util/pid';
import { TEMP_NAME, moa, moaAsync, pythonWrapper, root, twoDomainFiles, walk } from '../helpers/moaCli';
import { tempWorkspace } from '../helpers/tmp';

const TRAIN = ['train', '--steps', '3', '--router-steps', '2'];
// The template's experts come from other settings: training is deterministic, so the same run
// would rewrite byte-identical experts and hide which ones a killed run replaced.
const TEMPLATE_TRAIN = ['train', '--steps', '2', '--router-steps', '1'];
let template: { root: string; cleanup: () => void };
let scratch: { root: string; cleanup: () => void };
let killer: string;
let previous: Map<string, Buffer>;

function copyOf(name: string): string {
  const dir = join(scratch.root, name);
  cpSync(template.root, dir, { recursive: true });
  return dir;
}

const expertBytes = (ws: string) => new Map(['python', 'markdown'].map((d) => [d, readFileSync(join(ws, '.moa', 'experts', d, 'adapter_model.safetensors'))]));

/** What must hold after any fault: every expert and the router whole, no run claiming to run. */
function assertWhole(ws: string, what: string): void {
  const layout = workspaceLayout(ws);
  const experts = listExperts(layout.expertsDir);
  assert.deepEqual(experts.map((e) => [e.name, e.status, e.reason]), [['markdown', 'ok', undefined], ['python', 'ok', undefined]], `${what}: both experts listed whole`);
  assert.equal(readRouterInfo(layout.routerDir)?.status, 'ok', `${what}: the router is whole (its checksum matches its weights)`);
  for (const id of listRuns(layout)) assert.notEqual(runStatus(layout, id), 'running', `${what}: run ${id} does not claim to be running`);
}

before(() => {
  template = tempWorkspace(twoDomainFiles());
  scratch = tempWorkspace();
  killer = pythonWrapper(scratch.root, 'faults/kill_at.py');
  for (const args of [['init'], ['data'], TEMPLATE_TRAIN]) {
    const r = moa(template.root, args);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
  }
  previous = expertBytes(template.root);
});

after(() => {
  template?.cleanup();
  scratch?.cleanup();
});

/** The renames one run makes, in order (each an atomic write or a publish step). */
function renamesOf(args: string[]): string[] {
  const ws = copyOf(`count-${args[0]}`);
  const log = join(scratch.root, `renames-${args[0]}.log`);
  const r = moa(ws, [...args, '--python', killer], { env: { MOA_KILL_LOG: log } });
  assert.equal(r.code, 0, r.stderr);
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split('\t')[1]!) : [];
}

/** `want` points spread evenly over 1..n (all of them when n is small or MOA_FAULT_POINTS=all). */
function spread(n: number, want: number): number[] {
  if (process.env['MOA_FAULT_POINTS'] === 'all' || n <= want) return Array.from({ length: n }, (_, i) => i + 1);
  return [...new Set(Array.from({ length: want }, (_, i) => 1 + Math.round((i * (n - 1)) / (want - 1))))];
}

/**
 * The kill points: the first write of every kind, plus `want` spread over the rest. A kind is what
 * a write does whatever its expert, run or step: a checkpoint, the progress file, a file of an
 * expert's or the router's staging folder, setting an expert aside as .prev, a publish.
 */
function killPoints(renames: string[], want: number): number[] {
  const firsts = new Map<string, number>();
  renames.forEach((t, i) => {
    const kind = t
      .replace(/^.*\.moa\//, '')
      .replace(/^runs\/[^/]+\//, 'runs/RUN/')
      .replace(/\.tmp-[^/]+(\/.*)?$/, '.tmp')
      .replace(/^experts\/(\.?)[^/.]+/, 'experts/$1X')
      .replace(/\d+/g, '#');
    if (!firsts.has(kind)) firsts.set(kind, i + 1);
  });
  return [...new Set([...firsts.values(), ...spread(renames.length, want)])].sort((a, b) => a - b);
}

test('kill -9 of the trainer at every kind of write: experts and router stay whole, the run says failed, --resume finishes', () => {
  const renames = renamesOf(TRAIN);
  const kinds = (pattern: RegExp) => renames.filter((t) => pattern.test(t)).length;
  // Every kind of write is among the points: checkpoints of both stages, experts, the router.
  assert.ok(kinds(/checkpoints\/step-/) >= 1 && kinds(/checkpoints\/router-step-/) >= 1, renames.join('\n'));
  assert.ok(kinds(/experts\/(python|markdown)$/) >= 2 && kinds(/\/router$/) >= 1, renames.join('\n'));
  const points = killPoints(renames, 3);
  let resumed = 0;
  for (const n of points) {
    const what = `killed before rename ${n}/${renames.length} (${renames[n - 1]!.replace(/^.*\.moa\//, '.moa/')})`;
    const ws = copyOf(`kill-${n}`);
    const r = moa(ws, [...TRAIN, '--python', killer], { env: { MOA_KILL_AT: String(n) } });
    assert.equal(r.code, 1, `${what}: the CLI fails`);
    assert.match(r.stderr, /killed by SIGKILL/, what);
    const layout = workspaceLayout(ws);
    const run = listRuns(layout).pop()!;
    const meta = JSON.parse(readFileSync(join(layout.runsDir, run, 'run.json'), 'utf8'));
    assert.deepEqual([meta.status, meta.signal], ['failed', 'SIGKILL'], `${what}: run.json`);
    assert.match(meta.error, /killed by SIGKILL/, what);
    assertWhole(ws, what);
    // An expert is either the previous one, byte for byte, or a whole new one (assertWhole).
    const now = expertBytes(ws);
    const changed = [...now].filter(([d, b]) => !b.equals(previous.get(d)!)).map(([d]) => d);
    // Published: renamed into place, or set aside as .prev just before the kill (recovery then
    // finishes that publish from its complete staging folder).
    const published = renames.slice(0, n - 1).map((t) => /experts\/\.?(python|markdown)(\.prev)?$/.exec(t)?.[1]).filter((d) => d !== undefined);
    assert.deepEqual(changed.sort(), [...new Set(published)].sort(), `${what}: exactly the experts published before the kill changed`);

    const again = moa(ws, ['train', '--resume']);
    if (/no stopped, failed or interrupted run with a checkpoint/.test(again.stderr)) {
      // Killed before its first checkpoint: nothing to resume, and a new run starts clean.
      assert.equal(moa(ws, TRAIN).code, 0, `${what}: a new run`);
    } else {
      assert.equal(again.code, 0, `${what}: --resume: ${again.stderr}`);
      assert.equal(runStatus(layout, run), 'done', `${what}: the resumed run is done`);
      resumed++;
    }
    assertWhole(ws, `${what}, then resumed`);
    assert.deepEqual(walk(join(ws, '.moa')).filter((p) => TEMP_NAME.test(p)), [], `${what}: no temp file is left after the next run`);
  }
  assert.ok(points.length >= 10 || points.length === renames.length, `${points.length} kill points`);
  assert.ok(resumed >= points.length / 2, `${resumed} of ${points.length} killed runs were resumed from a checkpoint`);
  console.log(`kill -9 at ${points.length} of ${renames.length} renames (${points.join(", ")}); ${resumed} resumed from a checkpoint`);
});

test('kill -9 during the ONNX export: the next completion exports again and nothing is left behind', () => {
  const file = join('src', 'mod0.py');
  const count = join(scratch.root, 'renames-export.log');
  const probe = copyOf('export-count');
  assert.equal(moa(probe, ['complete', file, '--line', '4', '--col', '1', '--max-tokens', '2', '--python', killer], { env: { MOA_KILL_LOG: count } }).code, 0);
  const n = readFileSync(count, 'utf8').trim().split('\n').length;
  assert.ok(n >= 1);
  for (let k = 1; k <= n; k++) {
    const ws = copyOf(`export-kill-${k}`);
    const r = moa(ws, ['complete', file, '--line', '4', '--col', '1', '--max-tokens', '2', '--python', killer], { env: { MOA_KILL_AT: String(k) } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /export.*failed|SIGKILL/i);
    const ok = moa(ws, ['complete', file, '--line', '4', '--col', '1', '--max-tokens', '2']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(walk(join(ws, '.moa', 'cache', 'onnx')).filter((p) => TEMP_NAME.test(p)), [], 'the killed export\'s temp folder is gone');
  }
  console.log(`kill -9 at each of the export's ${n} renames`);
});

test('SIGKILL of the CLI: the lock still covers the orphaned trainer, which stops by itself with a checkpoint; --resume continues', async () => {
  const ws = copyOf('cli-kill');
  const layout = workspaceLayout(ws);
  const child = moaAsync(ws, ['train', '--steps', '100000', '--json']);
  await new Promise<void>((res) => child.stdout.on('data', (b: Buffer) => b.toString().includes('"type":"step"') && res()));
  const lock = JSON.parse(readFileSync(join(layout.runsDir, 'train.lock'), 'utf8'));
  const trainer = lock.pids?.[0] as number;
  assert.ok(trainer > 0 && pidAlive(trainer), 'the lock names the trainer');
  child.kill('SIGKILL');
  await new Promise((res) => child.on('close', res));
  const refused = moa(ws, TRAIN);
  if (pidAlive(trainer)) {
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`trainer pid ${trainer}\\) is still training`));
  }
  const deadline = Date.now() + 60_000;
  while (pidAlive(trainer) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.ok(!pidAlive(trainer), 'the orphaned trainer stopped on its own');
  const run = listRuns(layout).pop()!;
  assert.equal(runStatus(layout, run), 'interrupted', 'the run no one finished says so');
  assert.ok(readdirSync(join(layout.runsDir, run, 'checkpoints')).some((n) => n.endsWith('.safetensors')), 'it checkpointed as it stopped');
  assert.deepEqual(expertBytes(ws), previous, 'and replaced no expert');
  const resumed = moa(ws, ['train', '--resume', '--finish-now']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.notDeepEqual(expertBytes(ws), previous, '--finish-now published the checkpoint');
  assertWhole(ws, 'after --finish-now');
});

test('a full disk while recording events fails the run, naming the file and the errno, and stops the trainer', () => {
  const ws = copyOf('enospc-events');
  const r = moa(ws, ['train', '--steps', '50', '--json'], {
    nodeArgs: ['-r', join(root, 'test', 'fixtures', 'faults', 'enospc.cjs')],
    env: { MOA_ENOSPC_MATCH: 'events.jsonl', MOA_ENOSPC_AFTER: '3' },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /events\.jsonl: ENOSPC: no space left on device/);
  assert.ok(!r.stdout.includes('"type":"done"') || r.code === 1, 'never reported as success');
  const layout = workspaceLayout(ws);
  const run = listRuns(layout).pop()!;
  const meta = JSON.parse(readFileSync(join(layout.runsDir, run, 'run.json'), 'utf8'));
  assert.equal(meta.status, 'failed');
  assert.match(meta.error, /events\.jsonl: ENOSPC/);
  assert.ok(!existsSync(join(layout.runsDir, 'train.lock')), 'the lock is released');
  assertWhole(ws, 'after ENOSPC');

  // And when run.json cannot be written either, the failure says that too.
  const both = moa(copyOf('enospc-both'), ['train', '--steps', '50'], {
    nodeArgs: ['-r', join(root, 'test', 'fixtures', 'faults', 'enospc.cjs')],
    env: { MOA_ENOSPC_MATCH: '.json', MOA_ENOSPC_FNS: 'appendFileSync', MOA_ENOSPC_AFTER: '0' },
  });
  assert.equal(both.code, 1);
});

test('a full disk while taking a lock or building datasets is one line naming the file, no stack trace', () => {
  for (const [args, match] of [[['train', '--steps', '2'], 'train.lock'], [['data'], '.lock']] as const) {
    const r = moa(copyOf(`enospc-${args[0]}`), [...args], {
      nodeArgs: ['-r', join(root, 'test', 'fixtures', 'faults', 'enospc.cjs')],
      env: { MOA_ENOSPC_MATCH: match, MOA_ENOSPC_FNS: 'writeFileSync' },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\.lock: ENOSPC: no space left on device/);
    assert.match(r.stderr, /hint: The disk is full/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('a trainer that says done and exits 1 failed; one whose child holds stdout open does not hang the CLI', () => {
  const fake = pythonWrapper(scratch.root, 'faults/fake_trainer.py');
  const ws = copyOf('fake');
  const r = moa(ws, ['train', '--steps', '2', '--python', fake], { env: { MOA_FAKE: 'done_then_fail' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /reported done, then exited with code 1/);
  const layout = workspaceLayout(ws);
  assert.equal(runStatus(layout, listRuns(layout).pop()!), 'failed');

  const t0 = Date.now();
  const g = moa(ws, ['train', '--steps', '2', '--python', fake], { env: { MOA_FAKE: 'grandchild' }, timeout: 30_000 });
  assert.equal(g.code, 0, g.stderr);
  assert.ok(Date.now() - t0 < 20_000, `returned in ${Date.now() - t0} ms, not when the grandchild let go of stdout`);
});

test('a start refused by the lock leaves no run folder behind', () => {
  const ws = copyOf('lock-refused');
  const layout = workspaceLayout(ws);
  const runs = listRuns(layout);
  mkdirSync(layout.runsDir, { recursive: true });
  writeFileSync(join(layout.runsDir, 'train.lock'), JSON.stringify({ pid: process.pid, run: 'someone-else' }));
  const r = moa(ws, TRAIN);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /still training in this workspace/);
  assert.deepEqual(listRuns(layout), runs);
});

test('two commands changing the experts\' state at once both land', async () => {
  const ws = copyOf('concurrent-state');
  for (let round = 0; round < 8; round++) {
    const verb = round % 2 === 0 ? 'detach' : 'attach';
    const procs = ['python', 'markdown'].map((e) => moaAsync(ws, ['experts', verb, e]));
    const codes = await Promise.all(procs.map((p) => new Promise<number | null>((res) => p.on('close', res))));
    assert.deepEqual(codes, [0, 0]);
    const state = JSON.parse(readFileSync(join(ws, '.moa', 'state.json'), 'utf8'));
    assert.deepEqual(state.detached, verb === 'detach' ? ['markdown', 'python'] : [], `round ${round}: neither change was lost`);
  }
});
