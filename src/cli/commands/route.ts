import { existsSync, readFileSync, statSync } from 'node:fs';
import { MoaError } from '../../core/util/errors';
import { relative, resolve } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { DEFAULT_COMPLETE } from '../../core/inference/service';
import { buildPrompt, checkedOffsetAt } from '../../core/inference/prompt';
import { resolveBaseModelDir } from '../../core/models/base';
import { learnedRouteOnPrompt } from '../../core/routing/learned';
import { WorkspaceRouter } from '../../core/routing/workspaceRouter';
import { loadTokenizer } from '../../core/tokenizer/load';
import { EXIT, UsageError, intOption, product, print, workspaceOf } from '../args';
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
  const routes = new WorkspaceRouter(layout, config);
  const rel = relative(layout.root, abs).split('\\').join('/');
  let route = routes.route(rel, undefined, cursor.prefix);
  if (route.byRouter) {
    // The learned router reads the prompt a completion here would send: the tokenizer, no model.
    const tokenizer = loadTokenizer(resolveBaseModelDir(config.baseModel, product, layout.root));
    const prompt = buildPrompt(tokenizer, cursor.prefix, '', DEFAULT_COMPLETE.promptTokens, null);
    route = learnedRouteOnPrompt(route, routes.learned(), tokenizer, prompt, cursor.prefix);
  }
  const who = route.experts.map((e) => `${e.name} (${e.weight.toFixed(2)})`).join(' + ') || 'base model';
  const where = cursor.line ? ` at line ${cursor.line}, column ${cursor.col}` : '';
  print(values, `mode: ${route.mode}\nexperts${where}: ${who}\n${route.reason}`, { file: rel, ...(cursor.line ? { line: cursor.line, col: cursor.col } : {}), ...route });
  return EXIT.ok;
}
