import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A throwaway folder with the given files; removed by the returned cleanup. */
export function tempWorkspace(files: Record<string, string | Uint8Array> = {}): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'moa-test-'));
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** The repository root, from the bundled test's location (out/test/<dir>/x.test.js). */
export function repoRoot(): string {
  return join(__dirname, '..', '..', '..');
}
