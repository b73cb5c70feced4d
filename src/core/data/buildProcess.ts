import { fork } from 'node:child_process';
import { receiver } from '../util/channel';
import { Cancelled, MoaError } from '../util/errors';
import { parseBuildReply, type BuildReply, type BuildRequest } from './buildProtocol';
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
  /** The builder's bundle, dist/dataBuild.js (core/data/buildChild.ts). */
  builder: string;
  /** MoA Studio's own folder. */
  productRoot: string;
  root: string;
  signal?: AbortSignal;
}

/**
 * Builds the datasets in a child process that speaks buildProtocol.ts: a long build then never
 * blocks the caller's event loop, and cancelling it is killing the child. A killed build loses
 * nothing: shards are renamed into place only when whole, and its lock and temp files are taken
 * over or removed by the next build.
 */
export function buildDatasetsInChild(opts: ChildBuildOptions): Promise<DatasetManifest> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new BuildCancelled());
    const child = fork(opts.builder, [], {
      execPath: opts.node,
      // The VS Code extension host's executable is Electron; this makes it a plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      execArgv: [],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4096)));
    let answer: BuildReply | undefined;
    let invalid = '';
    child.on('message', receiver('dataset builder', parseBuildReply, (m) => (answer ??= m), (line) => (invalid = line)));
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
      if (answer?.type === 'done') return resolve(answer.manifest);
      if (answer?.type === 'failed') return reject(new MoaError(`dataset build failed: ${answer.message}`, answer.hint));
      const why = invalid || err.trim().split('\n').slice(-3).join(' ') || 'no message';
      reject(new MoaError(`dataset build failed (${sig ?? `exit ${code}`}): ${why}`));
    });
    child.send({ type: 'build', root: opts.root, productRoot: opts.productRoot } satisfies BuildRequest);
  });
}
