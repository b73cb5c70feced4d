import { leftOutCount, readManifest, type DatasetManifest } from '../../core/data/shards';
import { describeUpdate } from '../../core/data/watch';
import { loadConfig } from '../../core/config/load';
import { buildWorkspaceData, watchWorkspaceData } from '../../core/workspace';
import { errorMessage } from '../../core/util/errors';
import { EXIT, product, print, untilStopped, workspaceOf } from '../args';
import type { Values } from '../args';

function table(manifest: DatasetManifest, verbose = false): string {
  const lines = ['domain          files      bytes   train tok     val tok'];
  for (const d of manifest.domains) {
    lines.push(`${d.domain.padEnd(14)} ${String(d.files).padStart(6)} ${String(d.bytes).padStart(10)} ${String(d.trainTokens).padStart(11)} ${String(d.valTokens).padStart(11)}`);
  }
  const skipped = Object.entries(manifest.skipped).map(([k, v]) => `${v} ${k}`).join(', ');
  if (skipped) lines.push(`skipped: ${skipped}`);
  if (manifest.unassigned) lines.push(`${manifest.unassigned} files matched no domain`);
  if (verbose) {
    for (const f of manifest.skippedFiles ?? []) lines.push(`  skipped (${f.reason}): ${f.path}`);
    for (const f of manifest.unassignedFiles ?? []) lines.push(`  in no domain: ${f}`);
    const listed = (manifest.skippedFiles?.length ?? 0) + (manifest.unassignedFiles?.length ?? 0);
    const total = leftOutCount(manifest);
    if (total > listed) lines.push(`  (${total - listed} more not listed)`);
  } else if ((manifest.skippedFiles?.length ?? 0) + (manifest.unassignedFiles?.length ?? 0) > 0) lines.push('(--verbose names them)');
  return lines.join('\n');
}

export async function cmdData(values: Values): Promise<number> {
  const layout = workspaceOf(values);
  loadConfig(layout.configFile).warnings.forEach((w) => process.stderr.write(`warning: ${w}\n`));
  const before = readManifest(layout);
  const manifest = buildWorkspaceData(layout, product);
  print(values, table(manifest, values.verbose), manifest);
  for (const w of manifest.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
  for (const d of manifest.domains) {
    const was = before?.domains.find((b) => b.domain === d.domain)?.files ?? 0;
    if (d.files === 0) process.stderr.write(`warning: domain ${d.domain} has no files${was ? ` (it had ${was})` : ''}: check its include globs and languages in .moa/moa.json\n`);
  }
  if (!values.watch) return EXIT.ok;

  const watcher = watchWorkspaceData(layout, product, {
    onUpdate: (r, ms, paths) => {
      if (r.kind === 'unchanged') return;
      const { manifest, ...rest } = r;
      print(values, `${new Date().toLocaleTimeString()} ${paths} change(s): ${describeUpdate(r)} in ${ms.toFixed(0)} ms`, { ...rest, ms, domains: manifest.domains });
    },
    onError: (e) => process.stderr.write(`moa data --watch: ${errorMessage(e)}\n`),
  });
  await watcher.ready;
  process.stderr.write('watching for changes (Ctrl+C to stop)\n');
  await untilStopped();
  await watcher.dispose();
  return EXIT.ok;
}
