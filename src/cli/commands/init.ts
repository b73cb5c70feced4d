import { resolve } from 'node:path';
import { workspaceLayout } from '../../core/paths';
import { initWorkspace } from '../../core/workspace';
import { EXIT, print } from '../args';
import type { Values } from '../args';

export async function cmdInit(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const { config, scannedFiles } = initWorkspace(layout, { force: values.force });
  const lines = [`wrote ${layout.configFile} (${scannedFiles} files scanned)`, `base model: ${config.baseModel}`];
  for (const d of config.domains) lines.push(`  domain ${d.name.padEnd(14)} ${d.include.join(' ')}`);
  if (config.domains.length === 0) lines.push('  no domain found: add one to .moa/moa.json by hand');
  print(values, lines.join('\n'), { config: layout.configFile, domains: config.domains, scannedFiles });
  return EXIT.ok;
}
