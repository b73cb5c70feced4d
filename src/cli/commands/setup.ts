import { join, resolve } from 'node:path';
import { setupTrainerEnv, trainerEnvDir, type TorchBuild } from '../../core/trainer/setup';
import { EXIT, UsageError, product, print } from '../args';
import type { Values } from '../args';
import { cmdDoctor } from './doctor';

/**
 * `moa setup [--cpu|--cuda] [--venv DIR] [--python PATH]`: the trainer's Python environment, made
 * from a system Python (core/trainer/setup.ts), then `moa doctor` with it.
 */
export async function cmdSetup(values: Values): Promise<number> {
  if (values.cpu && values.cuda) throw new UsageError('--cpu and --cuda: one or the other');
  const build: TorchBuild = values.cpu ? 'cpu' : values.cuda ? 'cuda' : 'auto';
  const dir = values.venv ? resolve(values.venv) : trainerEnvDir();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const r = await setupTrainerEnv({
      dir, build, requirements: join(product.trainerDir, 'requirements.txt'), ...(values.python ? { python: values.python } : {}),
      onLine: (l) => !values.json && process.stderr.write(`${l}\n`), signal: abort.signal,
    });
    const where = values.venv ? `; use it with --python ${r.python} (or MOA_PYTHON)` : '; moa and the editor find it from now on';
    print(values, `trainer environment: ${dir}${where}\ntorch ${r.torch}: ${r.verdict}`, { dir, ...r });
  } finally {
    process.off('SIGINT', onSignal);
  }
  if (values.json) return EXIT.ok;
  return cmdDoctor({ ...values, python: join(dir, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python') });
}
