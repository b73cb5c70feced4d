import { resolve } from 'node:path';
import { workspaceLayout } from '../../core/paths';
import { initWorkspace } from '../../core/workspace';
import { baseChoices } from '../../core/models/choice';
import { EXIT, print, product } from '../args';
import type { Values } from '../args';

export async function cmdInit(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config, scannedFiles } = initWorkspace(layout, { force: values.force });
  const lines = [`wrote ${layout.configFile} (${scannedFiles} files scanned)`, `base model: ${config.baseModel}`];
  for (const d of config.domains) lines.push(`  domain ${d.name.padEnd(14)} ${d.include.join(' ')}`);
  if (config.domains.length === 0) lines.push('  no domain found: add one to .moa/moa.json by hand');
  const cached = baseChoices(product, layout.root).filter((c) => c.name.startsWith('hf:'));
  if (cached.length) lines.push(`base models in the Hugging Face cache (moa base set NAME): ${cached.map((c) => c.name).join(', ')}`);
  print(values, lines.join('\n'), { config: layout.configFile, domains: config.domains, scannedFiles });
  return EXIT.ok;
}
