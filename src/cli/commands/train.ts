import { relative, resolve } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { datasetsForTraining } from '../../core/data/compact';
import { resolveBaseModelDir } from '../../core/models/base';
import { workspaceLayout } from '../../core/paths';
import { describeFailure } from '../../core/trainer/process';
import { choosePython } from '../../core/trainer/python';
import { startTraining } from '../../core/trainer/train';
import { buildWorkspaceData } from '../../core/workspace';
import { EXIT, intOption, parseStages, productRoot, product } from '../args';
import type { Values } from '../args';
import { ProgressPrinter } from '../progress';

export async function cmdTrain(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config, warnings } = loadConfig(layout.configFile);
  warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
  const manifest = datasetsForTraining(layout) ?? buildWorkspaceData(layout, product);
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
