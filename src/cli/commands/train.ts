import { join, relative } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { datasetsForTraining } from '../../core/data/compact';
import { resolveBaseModelDir } from '../../core/models/base';
import type { WorkspaceLayout } from '../../core/paths';
import { keptPrevious, type TrainerEvent } from '../../core/trainer/events';
import { describeFailure, succeeded, visibleGpus, type DistLaunch } from '../../core/trainer/process';
import { latestResumable, runInfo } from '../../core/trainer/runs';
import { datasetWarnings, prepareExternalRun, resumeTraining, startTraining, type TrainingSession, type TrainRequest } from '../../core/trainer/train';
import { launchLine, sbatchScript, shellQuote } from '../../core/trainer/launchScript';
import { writeFileAtomic } from '../../core/util/atomic';
import { MoaError } from '../../core/util/errors';
import { buildWorkspaceData } from '../../core/workspace';
import { EXIT, UsageError, intOption, numberOption, parseStages, print, product, pythonOf, verboseLog, workspaceOf } from '../args';
import type { Values } from '../args';
import { ProgressPrinter } from '../progress';

function printer(values: Values, layout: WorkspaceLayout, progress: ProgressPrinter) {
  return (e: TrainerEvent) => {
    if (values.json) return void process.stdout.write(JSON.stringify(e) + '\n');
    if (e.type === 'step') progress.step(e);
    else if (e.type === 'expert_done') progress.expertDone(e);
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
  };
}

/**
 * `--nproc-per-node N|auto` (auto: one process per visible GPU, one on CPU) and, for several
 * machines, `--nnodes M --node-rank R --rdzv-endpoint HOST:PORT`: torchrun's own options.
 */
export function distOptions(values: Values, gpus: () => number): DistLaunch | undefined {
  const raw = values['nproc-per-node'];
  const nnodes = intOption(values, 'nnodes', 1, 1)!;
  if (raw === undefined && nnodes === 1) {
    if (values['node-rank'] !== undefined || values['rdzv-endpoint'] !== undefined) throw new UsageError('--node-rank and --rdzv-endpoint go with --nnodes M (M ≥ 2)');
    return undefined;
  }
  const nproc = raw === undefined || raw === 'auto' ? Math.max(1, gpus()) : intOption(values, 'nproc-per-node', 1, 1)!;
  if (nnodes === 1) return { nprocPerNode: nproc };
  const nodeRank = intOption(values, 'node-rank', undefined, 0);
  const endpoint = values['rdzv-endpoint'];
  if (nodeRank === undefined || nodeRank >= nnodes) throw new UsageError(`--nnodes ${nnodes} needs --node-rank R, this machine's rank from 0 to ${nnodes - 1}`);
  if (!endpoint || !/^[^\s:]+:\d{1,5}$/.test(endpoint)) throw new UsageError(`--nnodes ${nnodes} needs --rdzv-endpoint HOST:PORT, where the machines meet (the same on every machine), got ${JSON.stringify(endpoint ?? '')}`);
  return { nprocPerNode: nproc, nnodes, nodeRank, rdzvEndpoint: endpoint };
}

/** A new run's request from the options: the config, the datasets (built when missing), the budget. */
function newRun(values: Values, layout: WorkspaceLayout, python: string, processes: DistLaunch | undefined): TrainRequest {
  const { config, warnings } = loadConfig(layout.configFile);
  warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
  return {
    layout,
    product,
    config,
    manifest: datasetsForTraining(layout) ?? buildWorkspaceData(layout, product),
    baseModelDir: resolveBaseModelDir(config.baseModel, product, layout.root),
    python,
    steps: intOption(values, 'steps', undefined, 1),
    routerSteps: intOption(values, 'router-steps', undefined, 1),
    stages: parseStages(values.stages),
    device: values.device,
    keepPartial: values['keep-partial'],
    minutes: numberOption(values, 'minutes'),
    processes,
  };
}

function start(values: Values, layout: WorkspaceLayout, onEvent: (e: TrainerEvent) => void): TrainingSession {
  const python = pythonOf(values);
  const processes = distOptions(values, () => visibleGpus(python, product.trainerDir));
  if (values.resume) {
    const run = values.run ? runInfo(layout, values.run) : latestResumable(layout);
    if (!run) throw new MoaError(`${layout.runsDir}: no stopped, failed or interrupted run with a checkpoint to resume`, 'Start a new run with "moa train".');
    return resumeTraining({ layout, product, python, run, processes, finishNow: values['finish-now'], keepPartial: values['keep-partial'], onEvent, onLog: verboseLog });
  }
  if (values['finish-now']) throw new UsageError('--finish-now goes with --resume');
  const request = newRun(values, layout, python, processes);
  datasetWarnings(request.manifest, request.config).forEach((w) => process.stderr.write(`warning: ${w}\n`));
  return startTraining({ ...request, onEvent, onLog: verboseLog });
}

/**
 * --print-launch: a run prepared here, started elsewhere. Prints the command for a machine with
 * the GPUs and writes a Slurm script into the run folder; the dashboard follows its events.
 */
function printLaunch(values: Values, layout: WorkspaceLayout): number {
  if (values.resume) throw new UsageError('--print-launch prepares a new run; it does not go with --resume');
  const python = pythonOf(values);
  const processes = distOptions(values, () => visibleGpus(python, product.trainerDir));
  const { run, configPath } = prepareExternalRun(newRun(values, layout, python, processes));
  const plan = { python, trainerDir: product.trainerDir, configPath, eventsFile: run.eventsFile, processes };
  const command = launchLine(plan);
  const sbatch = join(run.dir, 'sbatch.sh');
  writeFileAtomic(sbatch, sbatchScript({ ...plan, nodes: processes?.nnodes ?? 1, gpusPerNode: processes?.nprocPerNode ?? 1, jobName: `moa-${run.id}`, logDir: run.dir }));
  print(values, [
    `run ${run.id} prepared: ${run.dir}`,
    '',
    `On the machine that trains (the workspace at this same path${processes?.nnodes ? '; on each machine, with its own --node-rank' : ''}):`,
    `  ${command}`,
    '',
    `As a Slurm job (${processes?.nnodes ?? 1} node(s) × ${processes?.nprocPerNode ?? 1} process(es); $PYTHON picks the cluster's interpreter):`,
    `  sbatch ${shellQuote(sbatch)}`,
    '',
    `The trainer writes ${run.eventsFile}; "MoA: Show Run Curves" on run ${run.id} (or "moa report --run ${run.id}") follows it as it grows.`,
  ].join('\n'), { run: run.id, dir: run.dir, config: configPath, command, sbatch });
  return EXIT.ok;
}

export async function cmdTrain(values: Values): Promise<number> {
  const layout = workspaceOf(values);
  if (values['print-launch']) return printLaunch(values, layout);
  const progress = new ProgressPrinter(process.stdout);
  const session = start(values, layout, printer(values, layout, progress));
  const onSignal = () => session.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const exit = await session.exited;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  progress.end();
  if (!succeeded(exit)) {
    process.stderr.write(`moa train: ${describeFailure(exit)}\nrun: ${session.run.dir}\n`);
    if (!exit.hostError) process.stderr.write(`  hint: continue it from its last checkpoint with "moa train --resume --run ${session.run.id}"\n`);
    return EXIT.failed;
  }
  const kept = keptPrevious(exit.done);
  if (!values.json) {
    process.stdout.write(`run ${session.run.id} ${exit.done.stopped ? 'stopped' : 'finished'}\n`);
    if (kept.length) {
      process.stdout.write(`stopped before the end of ${kept.join(', ')}: the existing ${kept.join(' and ')} ${kept.length > 1 ? 'were' : 'was'} kept as ${kept.length > 1 ? 'they were' : 'it was'}\n`);
      process.stdout.write(`  continue: moa train --resume --run ${session.run.id}\n  or keep the partly trained ones: moa train --resume --run ${session.run.id} --finish-now\n`);
    }
  }
  return exit.done.stopped ? EXIT.stopped : EXIT.ok;
}
