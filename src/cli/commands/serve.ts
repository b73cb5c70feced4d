import { loadConfig } from '../../core/config/load';
import { CompletionService } from '../../core/inference/service';
import { ApiError } from '../../core/serve/openaiApi';
import { SERVE_DEFAULTS, servedConfig, startServer } from '../../core/serve/server';
import { MoaError } from '../../core/util/errors';
import { EXIT, intOption, product, pythonOf, untilStopped, workspaceOf } from '../args';
import type { Values } from '../args';

/** `moa serve`: the workspace's experts over an OpenAI-compatible HTTP API (core/serve/server.ts). */
export async function cmdServe(values: Values): Promise<number> {
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  const served = servedConfig(config);
  const service = new CompletionService(layout, product, served, pythonOf(values), (l) => process.stderr.write(l + '\n'));
  await service.ready();
  let server;
  try {
    server = await startServer({
      experts: () => service.routes.attachedExperts(),
      complete: (rel, prompt, opts, suffix) => service.complete(rel, prompt, opts, suffix),
      chat: false,
    }, {
      ...SERVE_DEFAULTS,
      host: values.host ?? SERVE_DEFAULTS.host,
      port: intOption(values, 'port', SERVE_DEFAULTS.port, 0)!,
      ...(values['api-key'] ? { apiKey: values['api-key'] } : {}),
      onLog: (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`),
    });
  } catch (e) {
    await service.dispose();
    if (e instanceof ApiError) throw new MoaError(e.message);
    throw e;
  }
  // The line a script waits for (port 0 picks a free port).
  process.stdout.write(`moa serve: listening on ${server.url}/v1 (models: moa, base, experts; routing ${served.routing.mode})\n`);
  await untilStopped();
  process.stderr.write('moa serve: finishing the requests in flight, then exiting\n');
  await server.close();
  await service.dispose();
  return EXIT.ok;
}
