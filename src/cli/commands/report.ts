import { join, relative, resolve } from 'node:path';
import { collectReport } from '../../core/report/collect';
import { renderReport } from '../../core/report/render';
import { writeFileAtomic } from '../../core/util/atomic';
import { EXIT, print, workspaceOf } from '../args';
import type { Values } from '../args';

export async function cmdReport(values: Values): Promise<number> {
  const layout = workspaceOf(values);
  const input = collectReport(layout, { runId: values.run });
  const out = values.out !== undefined ? resolve(values.out) : join(layout.moaDir, 'report.html');
  writeFileAtomic(out, renderReport(input));
  for (const p of input.problems) process.stderr.write(`warning: ${p}\n`);
  const missing = [
    ...(input.stages.length ? [] : ['loss curves (moa train)']),
    ...(input.eval ? [] : ['eval table (moa eval)']),
    ...(input.router ? [] : ['router']),
    ...(input.dataset ? [] : ['datasets (moa data)']),
  ];
  const shown = relative(process.cwd(), out);
  print(
    values,
    `report: ${shown.startsWith('..') || shown === '' ? out : shown}${input.run ? ` (run ${input.run.id})` : ''}${missing.length ? `\nnot available yet: ${missing.join(', ')}` : ''}`,
    { path: out, run: input.run?.id ?? null, stages: input.stages.map((s) => s.stage), eval: !!input.eval, router: !!input.router, dataset: !!input.dataset, problems: input.problems },
  );
  return EXIT.ok;
}
