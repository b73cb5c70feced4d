import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import type { DatasetManifest } from './shards';
import { readDomainIndex } from './fileIndex';

/** Past this a file is too long to open as a first example. */
const MAX_BYTES = 64 * 1024;

/**
 * Where to show a first inline completion (the walkthrough's last step): a held-out file of the
 * largest domain (its expert has not seen it), at the end of a line that opens something (`:`,
 * `{`, `(`, `[`, `,`) in the middle of the file, where the completion starts the next line.
 * Lines and columns are 0-based. Undefined when no domain has a file with such a line.
 */
export function completionSpot(layout: WorkspaceLayout, manifest: DatasetManifest): { file: string; domain: string; line: number; col: number } | undefined {
  const domains = [...manifest.domains].sort((a, b) => b.trainTokens + b.valTokens - (a.trainTokens + a.valTokens));
  for (const d of domains) {
    const index = readDomainIndex(layout, d.domain);
    if (!index) continue;
    // Held-out files first, then the rest; within each, the longest that is not too long.
    const files = Object.entries(index.files).filter(([, f]) => f.b <= MAX_BYTES).sort(([, a], [, b]) => b.s - a.s || b.b - a.b);
    for (const [rel] of files) {
      let text: string;
      try {
        text = readFileSync(join(layout.root, rel), 'utf8');
      } catch {
        continue;
      }
      const lines = text.split('\n');
      const opens = (i: number) => /[:{([,]\s*$/.test(lines[i]!) && (lines[i + 1] ?? '').trim() !== '';
      const middle = Math.floor(lines.length / 2);
      // The opener nearest the middle of the file.
      for (let k = 0; k < lines.length; k++) {
        for (const i of [middle + k, middle - k - 1]) {
          if (i >= 0 && i < lines.length - 1 && opens(i)) return { file: rel, domain: d.domain, line: i, col: lines[i]!.replace(/\s+$/, '').length };
        }
      }
    }
  }
  return undefined;
}
