import { delimiter } from 'node:path';
import { TRAINER_ENV, torchrunArgs, type DistLaunch } from './process';

/**
 * `moa train --print-launch`: the exact command that runs a prepared training run, for a machine
 * other than the editor's (a GPU box, a Slurm cluster). Pure: text only. The trainer writes its
 * events to the run's events.jsonl, which the dashboard follows where the folder is shared.
 */

/** A word for a POSIX shell, quoted only when it needs to be. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface LaunchPlan {
  python: string;
  trainerDir: string;
  configPath: string;
  eventsFile: string;
  processes?: DistLaunch;
}

/** The environment every trainer start gets (trainerLaunch): the trainer importable, the workspace not. */
function envWords(trainerDir: string): string[] {
  return [`PYTHONPATH=${shellQuote(trainerDir)}${'${PYTHONPATH:+' + delimiter + '$PYTHONPATH}'}`, ...Object.entries(TRAINER_ENV).map(([k, v]) => `${k}=${v}`)];
}

/** One line for a shell on one machine (every machine of a multi-node run, each with its own --node-rank). */
export function launchLine(p: LaunchPlan): string {
  const words = [shellQuote(p.python), ...torchrunArgs(p.processes).map(shellQuote), '-m', 'moa_trainer', 'train', '--config', shellQuote(p.configPath)];
  return `cd ${shellQuote(p.trainerDir)} && ${envWords(p.trainerDir).join(' ')} ${words.join(' ')} > ${shellQuote(p.eventsFile)}`;
}

/**
 * A Slurm batch script: one task per node, torchrun on each with the first node as the
 * rendezvous, `gpusPerNode` processes per node; node 0 (where global rank 0, the only one that
 * reports, runs) writes the events file. `$PYTHON` picks the cluster's interpreter.
 */
export function sbatchScript(p: LaunchPlan & { nodes: number; gpusPerNode: number; jobName: string; logDir: string }): string {
  const torchrun = ['-m', 'torch.distributed.run', '--nnodes', '"$SLURM_NNODES"', '--node-rank', '"$SLURM_NODEID"', '--rdzv-backend', 'c10d',
    '--rdzv-endpoint', '"$head:29500"', '--rdzv-id', '"$SLURM_JOB_ID"', '--nproc-per-node', String(p.gpusPerNode), '--tee', '2'];
  return [
    '#!/bin/bash',
    `#SBATCH --job-name=${p.jobName}`,
    `#SBATCH --nodes=${p.nodes}`,
    '#SBATCH --ntasks-per-node=1',
    ...(p.gpusPerNode > 0 ? [`#SBATCH --gpus-per-node=${p.gpusPerNode}`] : []),
    `#SBATCH --output=${p.logDir}/slurm-%j.log`,
    'set -euo pipefail',
    '# The workspace must be at the same path on every node (a shared file system): the trainer',
    '# reads the datasets and writes the experts and the events file there.',
    `export PYTHON=\${PYTHON:-${shellQuote(p.python)}}`,
    `export MOA_CONFIG=${shellQuote(p.configPath)} MOA_EVENTS=${shellQuote(p.eventsFile)}`,
    'export head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
    `export ${envWords(p.trainerDir).join(' ')}`,
    `cd ${shellQuote(p.trainerDir)}`,
    `srun --kill-on-bad-exit=1 bash -c 'if [ "$SLURM_NODEID" = 0 ]; then out="$MOA_EVENTS"; else out=/dev/null; fi`
      + `; exec "$PYTHON" ${torchrun.join(' ')} -m moa_trainer train --config "$MOA_CONFIG" > "$out"'`,
    '',
  ].join('\n');
}
