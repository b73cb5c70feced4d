import { resolve } from 'node:path';
import { workspaceLayout } from '../../core/paths';
import { buildWorkspaceData } from '../../core/workspace';
import { EXIT, product, print } from '../args';
import type { Values } from '../args';

export async function cmdData(values: Values): Promise<number> {
  const layout = workspaceLayout(resolve(values.workspace ?? '.'));
  const manifest = buildWorkspaceData(layout, product);
  const lines = ['domain          files      bytes   train tok     val tok'];
  for (const d of manifest.domains) {
    lines.push(`${d.domain.padEnd(14)} ${String(d.files).padStart(6)} ${String(d.bytes).padStart(10)} ${String(d.trainTokens).padStart(11)} ${String(d.valTokens).padStart(11)}`);
  }
  const skipped = Object.entries(manifest.skipped).map(([k, v]) => `${v} ${k}`).join(', ');
  if (skipped) lines.push(`skipped: ${skipped}`);
  if (manifest.unassigned) lines.push(`${manifest.unassigned} files matched no domain`);
  print(values, lines.join('\n'), manifest);
  return EXIT.ok;
}
