// Scale-out through torchrun (issue #21), all real: `moa train --nproc-per-node 2` starts two gloo
// processes on CPU through `python -m torch.distributed.run`, and they train the same experts as
// one process on the same global batch; rank 0 alone reports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempWorkspace } from '../helpers/tmp';
import { workspaceLayout } from '../../src/core/paths';
import { runStatus } from '../../src/core/trainer/runs';

const cli = join(repoRoot(), 'dist', 'cli.js');
let ws: { root: string; cleanup: () => void };

function moa(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args, '--workspace', ws.root], { cwd: ws.root, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 8; i++) {
    files[`src/m${i}.py`] = `import os\n\n\ndef load_${i}(path, limit=${i + 3}):\n    with open(path) as handle:\n        return [line.strip() for line in handle.readlines()[:limit]]\n\n\nclass Store${i}:\n    def __init__(self, name):\n        self.name = name\n        self.items = {}\n`.repeat(3);
    files[`docs/g${i}.md`] = `# Guide ${i}\n\nThis guide explains how to set up the project on a new machine.\n\n## Install\n\nRun the installer and follow the prompts. The defaults work for most people.\n`.repeat(3);
  }
  ws = tempWorkspace(files);
  assert.equal(moa(['init']).code, 0);
  assert.equal(moa(['data']).code, 0);
});

after(() => ws?.cleanup());

type Event = { type: string; step?: number; expert?: string; loss?: number; world_size?: number; name?: string };
const train = (extra: string[]) => {
  const r = moa(['train', '--steps', '4', '--stages', 'experts', '--minutes', '0', '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);
};

test('two processes through torchrun train the same experts as one, and rank 0 alone reports', { timeout: 600_000 }, () => {
  const one = train([]);
  const two = train(['--nproc-per-node', '2']);
  assert.equal(one.find((e) => e.type === 'plan')?.world_size, 1);
  assert.equal(two.find((e) => e.type === 'plan')?.world_size, 2, 'the plan says how many processes train');
  assert.equal(two.filter((e) => e.type === 'hello').length, 1, 'one hello: rank 0 alone speaks');
  const losses = (events: Event[]) => events.filter((e) => e.type === 'step').map((e) => [e.step, e.expert, e.loss] as const);
  const a = losses(one);
  const b = losses(two);
  assert.deepEqual(b.map(([s, x]) => [s, x]), a.map(([s, x]) => [s, x]));
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]![2]! - b[i]![2]!) <= 1e-4 * Math.abs(a[i]![2]!), `step ${a[i]![0]} ${a[i]![1]}: ${a[i]![2]} vs ${b[i]![2]}`);
  assert.deepEqual(two.filter((e) => e.type === 'artifact').map((e) => e.name).sort(), ['markdown', 'python']);
  for (const d of ['markdown', 'python']) assert.ok(existsSync(join(ws.root, '.moa', 'experts', d, 'adapter_model.safetensors')));
});

test('several machines need a rank and a meeting point; a bad process count is refused', () => {
  const r = moa(['train', '--nnodes', '2', '--nproc-per-node', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--nnodes 2 needs --node-rank R/);
  const e = moa(['train', '--nnodes', '2', '--node-rank', '1', '--rdzv-endpoint', 'nohost']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /--rdzv-endpoint HOST:PORT/);
  assert.match(moa(['train', '--nproc-per-node', 'two']).stderr, /--nproc-per-node must be an integer/);
});

test('a stop reaches every rank and ends with one checkpoint; --resume with one process (another world size) finishes the run', { timeout: 600_000 }, async () => {
  const child = spawn(process.execPath, [cli, 'train', '--steps', '400', '--stages', 'experts', '--minutes', '0', '--json', '--nproc-per-node', '2', '--workspace', ws.root], { cwd: ws.root });
  let out = '';
  let err = '';
  child.stderr.on('data', (b) => (err += b));
  const code = await new Promise<number | null>((resolve) => {
    child.stdout.on('data', (b) => {
      out += b;
      // Stop once training is under way, as Ctrl+C would.
      if (/"type":"step","stage":"experts","expert":"\w+","step":3,/.test(out) && !child.killed) child.kill('SIGINT');
    });
    child.on('close', resolve);
  });
  assert.equal(code, 3, `stopped: exit 3\n${err.slice(-2000)}`);
  const events = out.trim().split('\n').map((l) => JSON.parse(l) as Event & { stopped?: boolean; steps_done?: number; checkpoint?: string });
  const done = events.at(-1)!;
  assert.equal(done.type, 'done');
  assert.equal(done.stopped, true);
  assert.equal(events.filter((e) => e.type === 'done').length, 1, 'one done: rank 0 alone');
  assert.ok(done.checkpoint && existsSync(done.checkpoint), 'the stop left a checkpoint');
  // The checkpoint holds the experts and the optimizer, not the ranks: a run two processes started
  // continues on one (the global batch is the same, so the plan is too).
  const resumed = moa(['train', '--resume', '--nproc-per-node', '1', '--json']);
  assert.equal(resumed.code, 0, resumed.stderr.slice(-2000));
  const revents = resumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);
  assert.equal(revents.find((e) => e.type === 'plan')?.world_size, 1);
  const firstStep = revents.find((e) => e.type === 'step')?.step ?? 0;
  assert.ok(firstStep > 3, `resumed after the stop, not from the start: first step ${firstStep}`);
  const rdone = JSON.parse(resumed.stdout.trim().split('\n').pop()!) as { stopped: boolean; steps_done: number; resumed: boolean };
  // The run ends where the plan does: its 400 steps, or each expert's epoch cap on this small workspace.
  assert.deepEqual([rdone.stopped, rdone.resumed], [false, true]);
  assert.ok(rdone.steps_done > done.steps_done!, `continued past the stop: ${rdone.steps_done} > ${done.steps_done}`);
});

/** The processes under `pid`, each with its environment (Linux /proc). */
function descendants(pid: number): { pid: number; env: string }[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      parent.set(Number(d), Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1]));
    } catch { /* gone */ }
  }
  const out: { pid: number; env: string }[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) if (pp === p) {
      try {
        out.push({ pid: c, env: readFileSync(`/proc/${c}/environ`, 'utf8') });
      } catch { /* gone */ }
      walk(c);
    }
  };
  walk(pid);
  return out;
}

test('a rank that dies fails the run, naming that rank and how it ended; the experts stay as they were', { timeout: 600_000, skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const expert = join(ws.root, '.moa', 'experts', 'python', 'adapter_model.safetensors');
  const before = readFileSync(expert);
  const child = spawn(process.execPath, [cli, 'train', '--steps', '400', '--stages', 'experts', '--minutes', '0', '--json', '--nproc-per-node', '2', '--workspace', ws.root], { cwd: ws.root });
  let out = '';
  let err = '';
  let killed = 0;
  child.stderr.on('data', (b) => (err += b));
  const code = await new Promise<number | null>((resolve) => {
    child.stdout.on('data', (b) => {
      out += b;
      if (!killed && /"type":"step","stage":"experts","expert":"\w+","step":3,/.test(out)) {
        const rank1 = descendants(child.pid!).find((p) => p.env.split('\0').includes('LOCAL_RANK=1'));
        if (rank1) process.kill((killed = rank1.pid), 'SIGKILL');
      }
    });
    child.on('close', resolve);
  });
  assert.ok(killed, 'found rank 1 among the trainer processes');
  assert.equal(code, 1, `failed: exit 1\n${err.slice(-2000)}`);
  assert.match(err, /rank 1 \(local rank 1\) on \S+ failed first: exit code -9 \(SIGKILL\)/);
  const runs = readdirSync(join(ws.root, '.moa', 'runs')).sort();
  const run = JSON.parse(readFileSync(join(ws.root, '.moa', 'runs', runs.at(-1)!, 'run.json'), 'utf8'));
  assert.equal(run.status, 'failed');
  assert.match(run.error, /rank 1 .*SIGKILL/);
  assert.deepEqual(readFileSync(expert), before, 'the failed run left the existing expert byte for byte');
});

test('--print-launch prepares a run whose printed command trains it, as another machine would; the run then reads as done', { timeout: 600_000 }, () => {
  const expert = join(ws.root, '.moa', 'experts', 'python', 'adapter_model.safetensors');
  const before = readFileSync(expert);
  const r = moa(['train', '--print-launch', '--nproc-per-node', '2', '--steps', '3', '--stages', 'experts', '--minutes', '0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as { run: string; dir: string; command: string; sbatch: string };
  const layout = workspaceLayout(ws.root);
  assert.equal(runStatus(layout, plan.run), 'running', 'prepared, not yet started: nothing here says it ended');
  assert.match(plan.command, / -m torch\.distributed\.run --standalone --nproc-per-node 2 --tee 2 -m moa_trainer train --config \S+train-config\.json > \S+events\.jsonl$/);
  assert.equal(spawnSync('bash', ['-n', plan.sbatch]).status, 0, 'the Slurm script parses');
  assert.match(readFileSync(plan.sbatch, 'utf8'), /#SBATCH --gpus-per-node=2[\s\S]*--rdzv-endpoint "\$head:29500"/);
  const ran = spawnSync('bash', ['-c', plan.command], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(ran.status, 0, ran.stderr.slice(-2000));
  assert.equal(runStatus(layout, plan.run), 'done', 'its events say it finished');
  const events = readFileSync(join(plan.dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Event);
  assert.equal(events.find((e) => e.type === 'plan')?.world_size, 2);
  assert.notDeepEqual(readFileSync(expert), before, 'the run published new experts into the workspace');
});
