import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { checkedOffsetAt } from '../../core/inference/prompt';
import { CompletionService, DEFAULT_COMPLETE } from '../../core/inference/service';
import { MoaError } from '../../core/util/errors';
import { EXIT, UsageError, intOption, numberOption, product, print, pythonOf, verboseLog, workspaceOf } from '../args';
import type { Values } from '../args';

export async function cmdComplete(values: Values, positionals: string[]): Promise<number> {
  const file = positionals[0];
  if (!file) throw new UsageError('moa complete needs a file');
  const line = intOption(values, 'line', undefined, 1);
  const col = intOption(values, 'col', undefined, 1);
  if (line === undefined || col === undefined) throw new UsageError('moa complete needs --line and --col (1-based)');
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  const abs = resolve(file);
  const rel = relative(layout.root, abs).split('\\').join('/');
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    throw new MoaError(`${abs}: cannot read the file`);
  }
  const service = new CompletionService(layout, product, config, pythonOf(values), verboseLog);
  try {
    const at = checkedOffsetAt(text, line, col);
    if ('problem' in at) throw new MoaError(`${abs}: ${at.problem}`);
    const cursor = at.offset;
    const opts = {
      ...DEFAULT_COMPLETE,
      maxNewTokens: intOption(values, 'max-tokens', DEFAULT_COMPLETE.maxNewTokens, 1)!,
      promptTokens: intOption(values, 'prompt-tokens', DEFAULT_COMPLETE.promptTokens, 8)!,
      temperature: numberOption(values, 'temperature') ?? 0,
      seed: intOption(values, 'seed', 0)!,
      expert: values.expert,
    };
    const c = await service.complete(rel, text.slice(0, cursor), opts, text.slice(cursor));
    if (values.json) print(values, '', { file: rel, line, col, ...c });
    else {
      process.stderr.write(`route: ${c.route.reason}\n`);
      process.stdout.write(c.text + '\n');
      const drafted = c.draft.passes ? `; prompt lookup kept ${c.draft.accepted} of ${c.draft.proposed} drafted tokens` : '';
      process.stderr.write(`${c.tokens} tokens, first token ${c.prefillMs.toFixed(0)} ms, total ${c.totalMs.toFixed(0)} ms (${c.stopReason})${drafted}\n`);
    }
    return EXIT.ok;
  } finally {
    await service.dispose();
  }
}
