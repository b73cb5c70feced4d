import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressLine, formatSeconds } from '../../src/cli/progress';
import { parseWebviewMessage } from '../../webview/dashboard/protocol';
import { choosePython } from '../../src/core/trainer/python';
import { newRunId, acquireRunLock } from '../../src/core/trainer/runs';
import { workspaceLayout } from '../../src/core/paths';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempWorkspace } from '../helpers/tmp';
import type { StepEvent } from '../../src/core/trainer/events';

test('progress line shows the ETA and rate first, the bar, every expert\'s loss', () => {
  const s = (expert: string, loss: number, eta?: number): StepEvent => ({ type: 'step', stage: 'experts', expert, step: 5, steps: 10, loss, lr: 1e-3, tokens_per_s: 1234, elapsed_s: 10, ...(eta !== undefined ? { eta_s: eta } : {}) });
  const line = progressLine(new Map([['py', s('py', 1.23456)], ['md', s('md', 2)]]), 120, 10);
  assert.match(line, /^\[experts\] ETA 10s · 1234 tok\/s · █{5}░{5} 5\/10 {2}py 1\.235 {2}md 2\.000$/);
  assert.equal(formatSeconds(125), '2m05s');
  // The trainer's own ETA (its loop's pace, model loading excluded) wins over elapsed / step.
  assert.match(progressLine(new Map([['py', s('py', 1, 42)]])), /ETA 42s/);
  // Seven experts on a 120-column terminal: the ETA and rate stay, the losses collapse to a mean.
  const seven = new Map(['python', 'markdown', 'typescript', 'javascript', 'terraform', 'yaml-pipelines', 'sql-migrations'].map((n, i) => [n, s(n, 1 + i / 10, 300)]));
  const narrow = progressLine(seven, 120);
  assert.ok(narrow.length <= 119, narrow);
  assert.match(narrow, /^\[experts\] ETA 5m00s · 1234 tok\/s · .* 7 experts, mean loss 1\.300$/);
  assert.match(progressLine(seven, 40), /^\[experts\] ETA 5m00s · 1234 tok\/s/);
});

test('webview messages other than the two known shapes are rejected', () => {
  assert.deepEqual(parseWebviewMessage({ type: 'stop' }), { type: 'stop' });
  for (const bad of [null, 'stop', [], { type: 'stop', extra: 1 }, { type: 'exec', cmd: 'rm' }, { type: 1 }]) {
    assert.equal(parseWebviewMessage(bad), undefined);
  }
});

test('python choice: explicit, then MOA_PYTHON, then python3', () => {
  assert.deepEqual(choosePython('/nowhere', '/usr/bin/py'), { command: '/usr/bin/py', source: 'explicit' });
  assert.equal(choosePython('/nowhere', undefined, { MOA_PYTHON: '/x/python' }).source, 'environment');
  assert.deepEqual(choosePython('/nowhere', undefined, { MOA_HOME: '/nowhere' }), { command: 'python3', source: 'path' });
  // The environment `moa setup` makes, found after the product's own .venv.
  const home = tempWorkspace({ 'trainer-env/bin/python': '' });
  try {
    assert.deepEqual(choosePython('/nowhere', undefined, { MOA_HOME: home.root }), { command: join(home.root, 'trainer-env', 'bin', 'python'), source: 'setup-env' });
  } finally {
    home.cleanup();
  }
});

test('the torch verdict says what was wanted, what pip installed and how to fix a mismatch', async () => {
  const { torchVerdict, atLeast310, trainerEnvDir, needsSetup } = await import('../../src/core/trainer/setup');
  assert.ok(needsSetup('PyTorch is not importable by /usr/bin/python3: No module named \'torch\''));
  assert.ok(needsSetup('spawn /home/u/.venv/bin/python ENOENT'));
  assert.ok(!needsSetup('CUDA out of memory'));
  assert.equal(torchVerdict('auto', null, 0), 'a CPU build of torch, as wanted (nvidia-smi finds no NVIDIA GPU).');
  assert.equal(torchVerdict('auto', '12.8', 2), 'a CUDA 12.8 build of torch, as wanted (nvidia-smi lists 2 GPUs).');
  assert.match(torchVerdict('cuda', null, 0), /^a CPU build of torch, but a CUDA build is wanted \(asked for\): point pip at PyTorch's CUDA wheels/);
  assert.match(torchVerdict('auto', null, 1), /CUDA build is wanted \(nvidia-smi lists 1 GPU\)/);
  assert.match(torchVerdict('cpu', '12.8', 0), /runs on the CPU too \(asked for\)/);
  assert.deepEqual(['3.9', '3.10', '3.13', '4.0', '2.7'].map(atLeast310), [false, true, true, true, false]);
  assert.equal(trainerEnvDir({ MOA_HOME: '/m' }), join('/m', 'trainer-env'));
  assert.equal(trainerEnvDir({ XDG_DATA_HOME: '/d' }), join('/d', 'moa-studio', 'trainer-env'));
});

test('run ids sort by time; a lock held by a dead process is taken over, a live one refuses', () => {
  assert.match(newRunId(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), /^20260102-030405-[0-9a-f]{4}$/);
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    mkdirSync(layout.runsDir, { recursive: true });
    writeFileSync(join(layout.runsDir, 'train.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, run: 'old' }));
    acquireRunLock(layout, 'new').release();
    writeFileSync(join(layout.runsDir, 'train.lock'), JSON.stringify({ pid: process.ppid, run: 'live' }));
    assert.throws(() => acquireRunLock(layout, 'x'), /still training/);
  } finally {
    ws.cleanup();
  }
});

test('run summaries: status, duration and the last loss per expert, newest first; a torn line is skipped', async () => {
  const { summarizeRuns } = await import('../../src/core/trainer/runSummary');
  const ws = tempWorkspace();
  try {
    const layout = workspaceLayout(ws.root);
    const step = (expert: string, step: number, loss: number) => JSON.stringify({ v: 1, type: 'step', stage: 'experts', expert, step, steps: 2, loss, lr: 0.001, tokens_per_s: 5, elapsed_s: step * 1.5 });
    for (const [id, status] of [['20260101-000000-aaaa', 'done'], ['20260102-000000-bbbb', 'stopped']] as const) {
      mkdirSync(join(layout.runsDir, id), { recursive: true });
      writeFileSync(join(layout.runsDir, id, 'run.json'), JSON.stringify({ v: 1, id, status, created: '2026-01-01T00:00:00Z' }));
      writeFileSync(join(layout.runsDir, id, 'events.jsonl'), [step('py', 1, 2), step('md', 1, 3), step('py', 2, 1.5), '{"v":1,"type":"st'].join('\n'));
    }
    const runs = summarizeRuns(layout);
    assert.deepEqual(runs.map((r) => [r.id, r.status]), [['20260102-000000-bbbb', 'stopped'], ['20260101-000000-aaaa', 'done']]);
    assert.deepEqual(runs[0]!.finalLoss, { py: 1.5, md: 3 });
    assert.equal(runs[0]!.durationS, 3);
    assert.equal(runs[0]!.steps, 2);
  } finally {
    ws.cleanup();
  }
});

test('the train config carries the router and mixed stages only when asked, with their folders', async () => {
  const { buildTrainConfig, defaultStages } = await import('../../src/core/trainer/train');
  const { validateConfig } = await import('../../src/core/config/validate');
  const { productLayout } = await import('../../src/core/paths');
  const layout = workspaceLayout('/ws');
  const config = validateConfig({ domains: [{ name: 'a', include: ['*'] }, { name: 'b', include: ['*'] }], router: { steps: 7 } }).config!;
  const manifest = { v: 1 as const, tokenizer: 't', created: '', skipped: {}, unassigned: 0, domains: ['a', 'b'].map((d) => ({ domain: d, files: 1, bytes: 1, trainFiles: 1, valFiles: 0, trainTokens: 500, valTokens: 0, fingerprint: d, trainPath: `/ws/${d}/train.bin`, valPath: `/ws/${d}/val.bin` })) };
  const run = { id: 'r', dir: '/ws/.moa/runs/r', eventsFile: '', metaFile: '', evalFile: '' };
  const req = { layout, product: productLayout('/p'), config, manifest, baseModelDir: '/m', python: 'python3' };
  assert.deepEqual(defaultStages(2), ['experts', 'router']);
  assert.deepEqual(defaultStages(1), ['experts']);
  const both = buildTrainConfig(req, run);
  assert.deepEqual(both['stages'], ['experts', 'router']);
  // The default 8-minute budget: three quarters to the experts, a quarter to the router.
  assert.deepEqual(both['router'], { steps: 7, eta: 0.1, expert_lr_mult: 0.1, top_k: 1, out_dir: layout.routerDir, max_seconds: 120 });
  assert.equal(both['max_seconds'], 360);
  assert.deepEqual([both['max_epochs'], both['patience'], both['eval_windows']], [4, 3, 16]);
  assert.equal(both['mixed'], undefined);
  const mixed = buildTrainConfig({ ...req, stages: ['experts', 'mixed'], routerSteps: 3, minutes: 0 }, run);
  assert.equal(mixed['router'], undefined);
  assert.deepEqual(mixed['mixed'], { out_dir: join(layout.baselinesDir, 'mixed'), max_seconds: 0 });
  assert.equal(mixed['max_seconds'], 0, 'minutes 0: no time budget');
  assert.equal((buildTrainConfig({ ...req, routerSteps: 3 }, run)['router'] as { steps: number }).steps, 3);
  const empty = { ...manifest, domains: manifest.domains.map((d) => (d.domain === 'b' ? { ...d, trainTokens: 0 } : d)) };
  assert.throws(() => buildTrainConfig({ ...req, manifest: empty }, run), /domain b has no training data/);
  // Fill-in-the-middle windows when the base has the sentinels, at training.fimRate; never otherwise.
  const fim = { prefix: 1, suffix: 2, middle: 3 };
  assert.deepEqual(buildTrainConfig({ ...req, fim }, run)['fim'], { ...fim, rate: 0.5 });
  assert.equal(buildTrainConfig({ ...req, fim: null }, run)['fim'], undefined);
  const off = validateConfig({ domains: [{ name: 'a', include: ['*'] }, { name: 'b', include: ['*'] }], training: { fimRate: 0 } }).config!;
  assert.equal(buildTrainConfig({ ...req, config: off, fim }, run)['fim'], undefined);
});

test('a base model\'s FIM sentinels come from its tokenizer, the built-in byte-level base\'s included', async () => {
  const { baseFim } = await import('../../src/core/trainer/train');
  const { repoRoot } = await import('../helpers/tmp');
  assert.deepEqual(baseFim(join(repoRoot(), 'models', 'moa-tiny')), { family: 'starcoder', layout: 'spm', prefix: 258, suffix: 260, middle: 259, stop: [258, 260, 259] });
  const star = baseFim(join(repoRoot(), 'test', 'fixtures', 'tokenizers', 'starcoder-fim-bpe'));
  assert.equal(star?.family, 'starcoder');
  assert.ok(star && new Set([star.prefix, star.suffix, star.middle]).size === 3);
  assert.equal(baseFim('/nonexistent'), null);
});

test('a failed torchrun run is described by the rank that failed first, with its own stderr', async () => {
  const { torchrunRootCause, describeFailure } = await import('../../src/core/trainer/process');
  const stderr = [
    '[default0]:step 3', '[default1]:Traceback (most recent call last):', '[default1]:  File "x.py", line 6', '[default1]:ValueError: rank one broke',
    'torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ', '=====', 'Failures:', '  rank      : 0 (local_rank: 0)', '  exitcode  : -15 (pid: 7673)  (SIGTERM)',
    'Root Cause (first observed failure):', '  time      : 2026-12-02_16:41:21', '  host      : gpu-7', '  rank      : 1 (local_rank: 1)',
    '  exitcode  : 1 (pid: 7674)', '  error_file: <N/A>', '  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html', '=====',
  ].join('\n');
  assert.equal(torchrunRootCause(stderr), 'rank 1 (local rank 1) on gpu-7 failed first: exit code 1; its stderr ended:\nTraceback (most recent call last):\n  File "x.py", line 6\nValueError: rank one broke');
  const killed = stderr.replace('  exitcode  : 1 (pid: 7674)', '  exitcode  : -9 (pid: 7674)  (SIGKILL)');
  assert.match(describeFailure({ code: 1, signal: null, stderrTail: killed, error: { type: 'error', message: 'RuntimeError: Connection closed by peer' } as never }),
    /^rank 1 \(local rank 1\) on gpu-7 failed first: exit code -9 \(SIGKILL\);.*rank 0 then reported: RuntimeError: Connection closed by peer$/s);
  assert.equal(torchrunRootCause('Traceback...\nValueError: x'), undefined, 'one process: no torchrun summary');
});

test('torchrun arguments: none for one process, standalone for one machine, a rendezvous for several', async () => {
  const { torchrunArgs, trainerLaunch } = await import('../../src/core/trainer/process');
  assert.deepEqual(torchrunArgs(undefined), []);
  assert.deepEqual(torchrunArgs({ nprocPerNode: 1 }), []);
  assert.deepEqual(torchrunArgs({ nprocPerNode: 4 }), ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '4', '--tee', '2']);
  assert.deepEqual(torchrunArgs({ nprocPerNode: 8, nnodes: 2, nodeRank: 1, rdzvEndpoint: 'head:29500' }),
    ['-m', 'torch.distributed.run', '--nnodes', '2', '--node-rank', '1', '--rdzv-backend', 'c10d', '--rdzv-endpoint', 'head:29500', '--nproc-per-node', '8', '--tee', '2']);
  // The same isolation as every start: the trainer's folder as cwd, nothing from the workspace importable.
  const l = trainerLaunch('/py', '/t', ['train'], {}, { nprocPerNode: 2 });
  assert.deepEqual(l.args, ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', '--tee', '2', '-m', 'moa_trainer', 'train']);
  assert.equal(l.options.cwd, '/t');
  assert.equal(l.options.env['PYTHONSAFEPATH'], '1');
  const { distOptions } = await import('../../src/cli/commands/train');
  assert.equal(distOptions({}, () => 3), undefined);
  assert.deepEqual(distOptions({ 'nproc-per-node': 'auto' }, () => 3), { nprocPerNode: 3 });
  assert.deepEqual(distOptions({ 'nproc-per-node': 'auto' }, () => 0), { nprocPerNode: 1 }, 'auto on CPU: one process');
});

test('printed launch lines quote what a shell would split or expand', async () => {
  const { shellQuote, launchLine } = await import('../../src/core/trainer/launchScript');
  assert.equal(shellQuote('/a/b-c_d.json'), '/a/b-c_d.json');
  assert.equal(shellQuote("/my work/it's $HOME"), `'/my work/it'\\''s $HOME'`);
  const line = launchLine({ python: '/py env/python', trainerDir: '/t', configPath: '/w s/c.json', eventsFile: '/w s/e.jsonl' });
  assert.equal(line, `cd /t && PYTHONPATH=/t\${PYTHONPATH:+:$PYTHONPATH} PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8 '/py env/python' -m moa_trainer train --config '/w s/c.json' > '/w s/e.jsonl'`);
});

test('the device as the tree and the dashboard show it: the GPU count when the machine has several', async () => {
  const { deviceKind, deviceLabel } = await import('../../src/core/trainer/device');
  const hello = { type: 'hello' as const, python: '3.11', torch: '2.11', device: 'cuda', gpu: 'NVIDIA H200', gpu_memory_gb: 139.8 };
  assert.deepEqual([deviceKind({ ...hello, gpu_count: 8 }), deviceLabel({ ...hello, gpu_count: 8 })], ['8 × cuda', '8 × NVIDIA H200 (140 GB)']);
  assert.deepEqual([deviceKind({ ...hello, gpu_count: 1 }), deviceLabel(hello)], ['cuda', 'NVIDIA H200 (140 GB)']);
  assert.deepEqual([deviceKind({ ...hello, device: 'cpu', gpu: null, gpu_memory_gb: null, gpu_count: 0 }), deviceLabel({ ...hello, device: 'cpu', gpu: null, gpu_memory_gb: null })], ['cpu', 'cpu']);
  assert.equal(deviceLabel({ ...hello, device: 'cpu', gpu: null, gpu_memory_gb: null }, 24 * 2 ** 30), 'cpu (24 GB RAM)');
  assert.equal(deviceLabel(hello, 24 * 2 ** 30), 'NVIDIA H200 (140 GB)', 'a GPU reports its own memory');
});
