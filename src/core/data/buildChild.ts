// The dataset builder's own process (bundled as dist/dataBuild.js, forked by buildDatasetsInChild):
// a long build never blocks the caller's event loop, and cancelling it is killing this process.
// It serves one BuildRequest, answers with a BuildReply and exits.
import { productLayout, workspaceLayout } from '../paths';
import { receiver } from '../util/channel';
import { MoaError, errorMessage } from '../util/errors';
import { buildWorkspaceData } from '../workspace';
import { parseBuildRequest, type BuildReply, type BuildRequest } from './buildProtocol';

const reply = (m: BuildReply) => process.send!(m, () => process.disconnect());

function build(req: BuildRequest): void {
  try {
    reply({ type: 'done', manifest: buildWorkspaceData(workspaceLayout(req.root), productLayout(req.productRoot)) });
  } catch (e) {
    reply({ type: 'failed', message: errorMessage(e), hint: e instanceof MoaError ? e.hint : undefined });
  }
}

process.once('message', receiver('dataset builder', parseBuildRequest, build, (line) => reply({ type: 'failed', message: line })));
