import { relative } from 'node:path';
import { loadConfig } from '../../core/config/load';
import { evaluate, formatEvalTable, saveEvalReport } from '../../core/eval/evaluate';
import { evaluateCompletions } from '../../core/eval/completions';
import { EXIT, intOption, product, print, pythonOf, verboseLog, workspaceOf } from '../args';
import type { Values } from '../args';

export async function cmdEval(values: Values): Promise<number> {
  const layout = workspaceOf(values);
  const { config } = loadConfig(layout.configFile);
  const python = pythonOf(values);
  const report = await evaluate(layout, product, config, python, { windows: intOption(values, 'windows', 16, 1)!, onLog: verboseLog });
  if (values.completions || values.positions !== undefined) {
    report.completions = await evaluateCompletions(layout, product, config, python, report.domains, {
      positions: intOption(values, 'positions', 24, 1)!,
      seed: intOption(values, 'seed', 0, 0)!,
      onLog: verboseLog,
    });
  }
  const files = saveEvalReport(layout, report);
  if (values.json) print(values, '', report);
  else process.stdout.write(`${formatEvalTable(report)}\nwritten to ${files.map((f) => relative(layout.root, f)).join(', ')}\n`);
  return EXIT.ok;
}
