import { existsSync, readFileSync, statSync } from 'node:fs';
import { MoaError } from '../../core/util/errors';
import { relative, resolve } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { CompletionService, DEFAULT_COMPLETE } from '../../core/inference/service';
import { choosePython } from '../../core/trainer/python';
import { EXIT, UsageError, productRoot, product, print, workspaceOf } from '../args';
import type { Values } from '../args';

export async function cmdRoute(values: Values, positionals: string[]): Promise<number> {
  const file = positionals[0];
  if (!file) throw new UsageError('moa route needs a file');
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  const abs = resolve(file);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new MoaError(`${abs}: no such file`, 'moa route takes a file of the workspace.');
  const service = new CompletionService(layout, product, config, choosePython(productRoot, values.python).command);
  const rel = relative(layout.root, abs).split('\\').join('/');
  let route = service.route(rel);
  let layers: { experts: string[]; weights: number[][] } | undefined;
  try {
    if (route.byRouter) {
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
