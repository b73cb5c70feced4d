import { spawn } from 'node:child_process';
import { Cancelled, MoaError, errorMessage } from '../util/errors';
import type { DatasetManifest } from './shards';

/** The build was cancelled; what was there before is kept. */
export class BuildCancelled extends Cancelled {
  constructor() {
    super('dataset build', 'The previous datasets are kept.');
  }
}

export interface ChildBuildOptions {
  /** A Node executable (in VS Code: the extension host's, run as Node). */
  node: string;
  /** The `moa` CLI bundle. */
  cli: string;
  root: string;
  signal?: AbortSignal;
}

/**
 * Builds the datasets in a child process (`moa data --json`): a long build then never blocks the
 * caller's event loop, and cancelling it is killing the child. A killed build loses nothing:
 * shards are renamed into place only when whole, and its lock and temp files are taken over or
 * removed by the next build.
 */
export function buildDatasetsInChild(opts: ChildBuildOptions): Promise<DatasetManifest> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new BuildCancelled());
    const child = spawn(opts.node, [opts.cli, 'data', '--json', '--workspace', opts.root], {
      // The VS Code extension host's executable is Electron; this makes it a plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-16 * 1024 * 1024)));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4096)));
    let cancelled = false;
    const onAbort = () => {
      cancelled = true;
      child.kill('SIGTERM');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => reject(new MoaError(`${opts.node}: cannot run the dataset build: ${e.message}`)));
    child.on('close', (code, sig) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (cancelled) return reject(new BuildCancelled());
      if (code !== 0) return reject(new MoaError(`dataset build failed (${sig ?? `exit ${code}`}): ${err.trim().split('\n').slice(-3).join(' ') || 'no message'}`));
      try {
        const m = JSON.parse(out) as DatasetManifest;
        if (m?.v !== 1 || !Array.isArray(m.domains)) throw new Error('not a dataset manifest');
        resolve(m);
      } catch (e) {
        reject(new MoaError(`dataset build printed something unexpected: ${errorMessage(e)}`));
      }
    });
  });
}
