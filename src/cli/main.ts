import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config/load';
import { readManifest } from '../core/data/shards';
import { expertFreshness, listExperts } from '../core/adapters/store';
import { exportExpert, importPeftAdapter } from '../core/adapters/peft';
import { readExpertState, setAttached, setPinned } from '../core/adapters/state';
import { inspectExpert } from '../core/adapters/inspection';
import { evaluate, formatEvalTable, saveEvalReport } from '../core/eval/evaluate';
import { readBaseModel, resolveBaseModelDir } from '../core/models/base';
import { productLayout, workspaceLayout } from '../core/paths';
import { CompletionService, DEFAULT_COMPLETE } from '../core/inference/service';
import { offsetAt } from '../core/inference/prompt';
import { choosePython } from '../core/trainer/python';
import { spawnTrainer, describeFailure } from '../core/trainer/process';
import { startTraining, TRAIN_STAGES, type TrainStage } from '../core/trainer/train';
import { buildWorkspaceData, initWorkspace } from '../core/workspace';
import { MoaError, errorMessage } from '../core/util/errors';
import { ProgressPrinter } from './progress';

/** Exit codes: 0 ok, 1 the work failed, 2 bad usage, 3 training stopped before the end. */
const EXIT = { ok: 0, failed: 1, usage: 2, stopped: 3 } as const;

const HELP: Record<string, string> = {
  '': `moa — Mixture-of-LoRAs experts for your workspace

usage: moa <command> [options]

commands:
  init        write .moa/moa.json with domains suggested from the workspace's files
  data        tokenize each domain's files into train/val shards
  train       train one LoRA expert per domain (python -m moa_trainer train)
  complete    complete a file at a position with the routed expert
  experts     list | attach | detach | pin | unpin | import | export | inspect
  route       which expert(s) serve a file, and why
  eval        held-out loss: base, every expert on every domain, mixed baseline, MoA routing
  doctor      check Python, torch and the device

common options: --workspace DIR (default: current folder), --json, --help
run "moa <command> --help" for a command's options`,
  init: `usage: moa init [--workspace DIR] [--force] [--json]
Scans the workspace (honouring .gitignore) and writes .moa/moa.json with one domain per language
that has enough files, base model builtin:moa-tiny. Refuses to overwrite without --force.`,
  data: `usage: moa data [--workspace DIR] [--json]
Tokenizes each domain's files into .moa/cache/data/<domain>/{train,val}.bin and prints counts.`,
  train: `usage: moa train [--steps N] [--stages experts,router,mixed] [--router-steps N] [--python PATH] [--device auto|cpu|cuda] [--workspace DIR] [--json]
Stage 1 (experts) trains every domain's expert together on the frozen base and writes
.moa/experts/<domain>/ in PEFT layout; stage 2 (router, the default with two or more domains)
trains the per-layer router into .moa/router/; "mixed" trains the one-LoRA baseline into
.moa/baselines/mixed/. --stages router alone refreshes the router over the existing experts.
--json prints each trainer event as a JSON line. Exit code 3 if stopped early.`,
  complete: `usage: moa complete <file> --line L --col C [--max-tokens N] [--temperature T] [--seed S] [--python PATH] [--json]
Completes <file> at line L, column C (both 1-based, as editors show them) with the expert that
label routing picks for the file's domain, and prints the completion.`,
  experts: `usage: moa experts <list|attach NAME|detach NAME|pin NAME|unpin|import DIR [NAME]|export NAME DIR|inspect NAME> [--force] [--workspace DIR] [--json]
list: every expert with its state (attached, detached, pinned, broken with the reason).
attach/detach/pin/unpin: workspace state in .moa/state.json; routing skips detached experts.
import: a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors), checked against the
base model, becomes an expert. export: writes an expert as a PEFT folder. inspect: per-layer
update norms, effective rank and the similarity to the other experts.`,
  eval: `usage: moa eval [--windows N] [--workspace DIR] [--json]
On each domain's held-out shard (N evenly spaced windows, default 16): the loss of the base model,
of every expert (the domain × expert matrix), of the mixed baseline when trained, and of MoA with
label routing, with the learned router's figures from its training run. Writes the report to
.moa/eval.json and beside the latest run.`,
  route: `usage: moa route <file> [--workspace DIR] [--json]
Prints the routing mode, the expert(s) chosen for the file with their weights, and why.`,
  doctor: `usage: moa doctor [--python PATH] [--json]
Runs the trainer's environment check: Python, torch, device, GPU.`,
};

const OPTIONS = {
  workspace: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  force: { type: 'boolean' },
  steps: { type: 'string' },
  stages: { type: 'string' },
  'router-steps': { type: 'string' },
  python: { type: 'string' },
  device: { type: 'string' },
  line: { type: 'string' },
  col: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  seed: { type: 'string' },
  windows: { type: 'string' },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

class UsageError extends Error {}

function intOption(values: Values, name: keyof Values, fallback?: number, min = 0): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
  return n;
}

function parseStages(raw: string | undefined): TrainStage[] | undefined {
  if (raw === undefined) return undefined;
  const stages = raw.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = stages.filter((x) => !TRAIN_STAGES.includes(x as TrainStage));
  if (bad.length || stages.length === 0) throw new UsageError(`--stages takes a comma-separated list of ${TRAIN_STAGES.join(', ')}; got "${raw}"`);
  return stages as TrainStage[];
}

const productRoot = resolve(__dirname, '..');
const product = productLayout(productRoot);

function print(values: Values, human: string, json: unknown): void {
  process.stdout.write((values.json ? JSON.stringify(json) : human) + '\n');
}

async function cmdInit(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config, scannedFiles } = initWorkspace(layout, { force: values.force });
  const lines = [`wrote ${layout.configFile} (${scannedFiles} files scanned)`, `base model: ${config.baseModel}`];
  for (const d of config.domains) lines.push(`  domain ${d.name.padEnd(14)} ${d.include.join(' ')}`);
  if (config.domains.length === 0) lines.push('  no domain found: add one to .moa/moa.json by hand');
  print(values, lines.join('\n'), { config: layout.configFile, domains: config.domains, scannedFiles });
  return EXIT.ok;
}

async function cmdData(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const manifest = buildWorkspaceData(layout, product);
  const lines = ['domain          files      bytes   train tok     val tok'];
  for (const d of manifest.domains) {
    lines.push(`${d.domain.padEnd(14)} ${String(d.files).padStart(6)} ${String(d.bytes).padStart(10)} ${String(d.trainTokens).padStart(11)} ${String(d.valTokens).padStart(11)}`);
  }
  const skipped = Object.entries(manifest.skipped).map(([k, v]) => `${v} ${k}`).join(', ');
  if (skipped) lines.push(`skipped: ${skipped}`);
  if (manifest.unassigned) lines.push(`${manifest.unassigned} files matched no domain`);
  print(values, lines.join('\n'), manifest);
  return EXIT.ok;
}

async function cmdTrain(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config, warnings } = loadConfig(layout.configFile);
  warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
  const manifest = readManifest(layout) ?? buildWorkspaceData(layout, product);
  const python = choosePython(productRoot, values.python).command;
  const progress = new ProgressPrinter(process.stdout);
  const session = startTraining({
    layout,
    product,
    config,
    manifest,
    baseModelDir: resolveBaseModelDir(config.baseModel, product, layout.root),
    python,
    steps: intOption(values, 'steps', undefined, 1),
    routerSteps: intOption(values, 'router-steps', undefined, 1),
    stages: parseStages(values.stages),
    device: values.device,
    onEvent: (e) => {
      if (values.json) return void process.stdout.write(JSON.stringify(e) + '\n');
      if (e.type === 'step') progress.step(e);
      else if (e.type === 'hello') process.stdout.write(`trainer: torch ${e.torch} on ${e.device}${e.gpu ? ` (${e.gpu})` : ''}\n`);
      else if (e.type === 'plan') process.stdout.write(`plan (${e.stage}): ${e.experts.join(', ')}, ${e.steps} steps\n`);
      else if (e.type === 'artifact') {
        progress.end();
        process.stdout.write(`wrote ${e.kind} ${e.name}: ${relative(layout.root, e.path) || e.path}\n`);
      } else if (e.type === 'eval') {
        progress.end();
        const acc = (e as { router_accuracy?: unknown }).router_accuracy;
        process.stdout.write(`eval ${e.expert} on ${e.domain}: loss ${e.loss.toFixed(4)}${typeof acc === 'number' ? `, routed to its own expert ${(acc * 100).toFixed(0)}%` : ''}\n`);
      }
    },
    onLog: (line) => process.env['MOA_VERBOSE'] && process.stderr.write(line + '\n'),
  });
  const onSignal = () => session.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const exit = await session.exited;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  progress.end();
  if (!exit.done) {
    process.stderr.write(`moa train: ${describeFailure(exit)}\nrun: ${session.run.dir}\n`);
    return EXIT.failed;
  }
  if (!values.json) process.stdout.write(`run ${session.run.id} ${exit.done.stopped ? 'stopped' : 'finished'}\n`);
  return exit.done.stopped ? EXIT.stopped : EXIT.ok;
}

async function cmdComplete(values: Values, positionals: string[]): Promise<number> {
  const file = positionals[0];
  if (!file) throw new UsageError('moa complete needs a file');
  const line = intOption(values, 'line', undefined, 1);
  const col = intOption(values, 'col', undefined, 1);
  if (line === undefined || col === undefined) throw new UsageError('moa complete needs --line and --col (1-based)');
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config } = loadConfig(layout.configFile);
  const abs = resolve(file);
  const rel = relative(layout.root, abs).split('\\').join('/');
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    throw new MoaError(`${abs}: cannot read the file`);
  }
  const service = new CompletionService(layout, product, config, choosePython(productRoot, values.python).command, (l) => process.env['MOA_VERBOSE'] && process.stderr.write(l + '\n'));
  try {
    const temperature = values.temperature === undefined ? 0 : Number(values.temperature);
    if (!Number.isFinite(temperature) || temperature < 0) throw new UsageError('--temperature must be a number ≥ 0');
    const c = await service.complete(rel, text.slice(0, offsetAt(text, line, col)), {
      ...DEFAULT_COMPLETE,
      maxNewTokens: intOption(values, 'max-tokens', DEFAULT_COMPLETE.maxNewTokens, 1)!,
      temperature,
      seed: intOption(values, 'seed', 0)!,
    });
    if (values.json) print(values, '', { file: rel, line, col, ...c });
    else {
      process.stderr.write(`route: ${c.route.reason}\n`);
      process.stdout.write(c.text + '\n');
      process.stderr.write(`${c.tokens} tokens, first token ${c.prefillMs.toFixed(0)} ms, total ${c.totalMs.toFixed(0)} ms (${c.stopReason})\n`);
    }
    return EXIT.ok;
  } finally {
    await service.dispose();
  }
}

function baseOf(layout: ReturnType<typeof workspaceLayout>) {
  const { config } = loadConfig(layout.configFile);
  return { config, base: readBaseModel(config.baseModel, resolveBaseModelDir(config.baseModel, product, layout.root)) };
}

async function cmdExperts(values: Values, positionals: string[]): Promise<number> {
  const [sub = 'list', arg, arg2] = positionals;
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const need = (what: string) => {
    if (!arg) throw new UsageError(`moa experts ${sub} needs ${what}`);
    return arg;
  };
  const known = (name: string) => {
    if (!listExperts(layout.expertsDir).some((e) => e.name === name && e.status === 'ok')) throw new MoaError(`${join(layout.expertsDir, name)}: no usable expert "${name}"`, 'See "moa experts list".');
    return name;
  };
  switch (sub) {
    case 'list': {
      const state = readExpertState(layout);
      const manifest = readManifest(layout);
      const experts = listExperts(layout.expertsDir).map((e) => ({
        ...e,
        attached: e.status === 'ok' && !state.detached.includes(e.name),
        pinned: state.pinned === e.name,
        freshness: expertFreshness(e, manifest?.domains.find((d) => d.domain === e.name)?.fingerprint),
      }));
      const lines = experts.map((e) =>
        e.status === 'ok'
          ? `${e.name.padEnd(14)} ${(e.pinned ? 'pinned' : e.attached ? 'attached' : 'detached').padEnd(9)} ${e.freshness.padEnd(7)} r=${e.r} alpha=${e.alpha} ${e.targetModules?.join(',')} loss=${e.meta.train_loss?.toFixed(3) ?? '?'}`
          : `${e.name.padEnd(14)} broken    ${e.reason}`,
      );
      print(values, lines.join('\n') || 'no experts yet: run "moa train"', experts);
      return EXIT.ok;
    }
    case 'attach':
    case 'detach': {
      const state = setAttached(layout, known(need('an expert name')), sub === 'attach');
      print(values, `${arg} ${sub}ed`, state);
      return EXIT.ok;
    }
    case 'pin': {
      const state = setPinned(layout, known(need('an expert name')));
      print(values, `${arg} pinned (used for every file when routing.mode is "pinned")`, state);
      return EXIT.ok;
    }
    case 'unpin':
      print(values, 'nothing pinned', setPinned(layout, null));
      return EXIT.ok;
    case 'import': {
      const dir = importPeftAdapter(resolve(need('a PEFT adapter folder')), layout.expertsDir, baseOf(layout).base, arg2, values.force);
      print(values, `imported ${arg} as ${dir}`, { expert: dir });
      return EXIT.ok;
    }
    case 'export': {
      const name = known(need('an expert name'));
      if (!arg2) throw new UsageError('moa experts export needs a destination folder');
      const files = exportExpert(join(layout.expertsDir, name), resolve(arg2), values.force);
      print(values, files.map((f) => `wrote ${f}`).join('\n'), { files });
      return EXIT.ok;
    }
    case 'inspect': {
      const r = inspectExpert(layout, product, baseOf(layout).config, known(need('an expert name')));
      const lines = [`expert ${r.expert}: r=${r.r} alpha=${r.alpha} ${r.parameters} parameters, ${r.sizeBytes} bytes`, 'layer  module   ‖ΔW‖     eff. rank'];
      for (const st of r.stats) lines.push(`${String(st.layer).padStart(5)}  ${st.module.padEnd(7)} ${st.norm.toFixed(4).padStart(7)}  ${st.effectiveRank.toFixed(2).padStart(8)}`);
      if (r.similarity.experts.length > 1) {
        lines.push('cosine similarity of updates:');
        r.similarity.experts.forEach((n, i) => lines.push(`  ${n.padEnd(14)} ${r.similarity.matrix[i]!.map((v) => v.toFixed(2).padStart(6)).join('')}`));
      }
      print(values, lines.join('\n'), r);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown "moa experts ${sub}"`);
  }
}

async function cmdRoute(values: Values, positionals: string[]): Promise<number> {
  const file = positionals[0];
  if (!file) throw new UsageError('moa route needs a file');
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config } = loadConfig(layout.configFile);
  const service = new CompletionService(layout, product, config, choosePython(productRoot, values.python).command);
  const rel = relative(layout.root, resolve(file)).split('\\').join('/');
  let route = service.route(rel);
  let layers: { experts: string[]; weights: number[][] } | undefined;
  try {
    if (route.mode === 'learned' && route.experts.length === 0) {
      // The learned router decides on a prompt: route the file's text, as a completion at its end would.
      const c = await service.complete(rel, readFileSync(resolve(file), 'utf8'), { ...DEFAULT_COMPLETE, maxNewTokens: 1 });
      route = c.route;
      layers = c.layerRouting;
    }
  } finally {
    await service.dispose();
  }
  const who = route.experts.map((e) => `${e.name} (${e.weight.toFixed(2)})`).join(' + ') || 'base model';
  const perLayer = layers ? '\n' + layers.weights.map((row, l) => `  layer ${l}: ${row.map((w, e) => `${layers!.experts[e]} ${w.toFixed(2)}`).join('  ')}`).join('\n') : '';
  print(values, `mode: ${route.mode}\nexperts: ${who}\n${route.reason}${perLayer}`, { file: rel, ...route, layers });
  return EXIT.ok;
}

async function cmdEval(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config } = loadConfig(layout.configFile);
  const report = await evaluate(layout, product, config, choosePython(productRoot, values.python).command, {
    windows: intOption(values, 'windows', 16, 1)!,
    onLog: (l) => process.env['MOA_VERBOSE'] && process.stderr.write(l + '\n'),
  });
  const files = saveEvalReport(layout, report);
  if (values.json) print(values, '', report);
  else process.stdout.write(`${formatEvalTable(report)}\nwritten to ${files.map((f) => relative(layout.root, f)).join(', ')}\n`);
  return EXIT.ok;
}

async function cmdDoctor(values: Values): Promise<number> {
  const python = choosePython(productRoot, values.python);
  const proc = spawnTrainer({ python: python.command, trainerDir: product.trainerDir, command: 'doctor', cwd: process.cwd(), onEvent: (e) => {
    if (e.type === 'hello') {
      print(values, `python: ${python.command} (${python.source})\ntorch: ${e.torch}\ndevice: ${e.device}${e.gpu ? ` — ${e.gpu}, ${e.gpu_memory_gb} GB` : ' (no CUDA GPU: training runs on CPU)'}`, { ...e, python: python.command, pythonSource: python.source, pythonVersion: e.python });
    }
  } });
  const exit = await proc.exited;
  if (!exit.done) {
    process.stderr.write(`moa doctor: ${describeFailure(exit)}\n`);
    return EXIT.failed;
  }
  return EXIT.ok;
}

const COMMANDS: Record<string, (v: Values, p: string[]) => Promise<number>> = {
  init: cmdInit,
  data: cmdData,
  train: cmdTrain,
  complete: cmdComplete,
  experts: cmdExperts,
  route: cmdRoute,
  eval: cmdEval,
  doctor: cmdDoctor,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP[''] + '\n');
    return command ? EXIT.ok : EXIT.usage;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`moa: unknown command "${command}"\n\n${HELP['']}\n`);
    return EXIT.usage;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(HELP[command] + '\n');
      return EXIT.ok;
    }
    return await run(values as Values, positionals);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`moa ${command}: ${errorMessage(e)}\n\n${HELP[command]}\n`);
      return EXIT.usage;
    }
    if (e instanceof MoaError) {
      process.stderr.write(`moa ${command}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}\n`);
      return EXIT.failed;
    }
    process.stderr.write(`moa ${command}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT.failed;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
