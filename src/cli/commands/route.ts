import { existsSync, readFileSync, statSync } from 'node:fs';
import { MoaError } from '../../core/util/errors';
import { relative, resolve } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { CompletionService, DEFAULT_COMPLETE } from '../../core/inference/service';
import { checkedOffsetAt } from '../../core/inference/prompt';
import { choosePython } from '../../core/trainer/python';
import { EXIT, UsageError, intOption, productRoot, product, print, workspaceOf } from '../args';
import type { Values } from '../args';

/** The text before the cursor: at --line/--col (the end of the line by default), or the whole file. */
function cursorPrefix(abs: string, text: string, values: Values): { prefix: string; line?: number; col?: number } {
  const line = intOption(values, 'line', undefined, 1);
  const col = intOption(values, 'col', undefined, 1);
  if (line === undefined) {
    if (col !== undefined) throw new UsageError('--col needs --line');
    return { prefix: text };
  }
  const lineText = (text.split('\n')[line - 1] ?? '').replace(/\r$/, '');
  const at = checkedOffsetAt(text, line, col ?? lineText.length + 1);
  if ('problem' in at) throw new MoaError(`${abs}: ${at.problem}`);
  return { prefix: text.slice(0, at.offset), line, col: col ?? lineText.length + 1 };
}

export async function cmdRoute(values: Values, positionals: string[]): Promise<number> {
  const file = positionals[0];
  if (!file) throw new UsageError('moa route needs a file');
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  const abs = resolve(file);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new MoaError(`${abs}: no such file`, 'moa route takes a file of the workspace.');
  const cursor = cursorPrefix(abs, readFileSync(abs, 'utf8'), values);
  const service = new CompletionService(layout, product, config, choosePython(productRoot, values.python).command);
  const rel = relative(layout.root, abs).split('\\').join('/');
  let route = service.route(rel, undefined, cursor.prefix);
  let layers: { experts: string[]; weights: number[][] } | undefined;
  try {
    if (route.byRouter) {
      // The learned router decides on a prompt: route the text before the cursor, as a completion there would.
      const c = await service.complete(rel, cursor.prefix, { ...DEFAULT_COMPLETE, maxNewTokens: 1 });
      route = c.route;
      layers = c.layerRouting;
    }
  } finally {
    await service.dispose();
  }
  const who = route.experts.map((e) => `${e.name} (${e.weight.toFixed(2)})`).join(' + ') || 'base model';
  const where = cursor.line ? ` at line ${cursor.line}, column ${cursor.col}` : '';
  const perLayer = layers ? '\n' + layers.weights.map((row, l) => `  layer ${l}: ${row.map((w, e) => `${layers!.experts[e]} ${w.toFixed(2)}`).join('  ')}`).join('\n') : '';
  print(values, `mode: ${route.mode}\nexperts${where}: ${who}\n${route.reason}${perLayer}`, { file: rel, ...(cursor.line ? { line: cursor.line, col: cursor.col } : {}), ...route, layers });
  return EXIT.ok;
}
