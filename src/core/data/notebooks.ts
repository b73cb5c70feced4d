import { readFileSync, statSync } from 'node:fs';
import { LruCache } from '../util/lru';
import { extensionsOfLanguages } from '../domains/languages';
import { isObject } from '../util/json';

/**
 * Jupyter notebooks are two documents: the code cells, in the kernel's language (they train that
 * language's expert), and the Markdown cells (they train the Markdown expert). Outputs are never
 * read. Each part has a virtual path, `<notebook>#code.<ext>` and `<notebook>#markdown.md`, so
 * domains, globs, shards and the dataset index treat it as a file of that language.
 */
const VIRTUAL = /^(.+\.ipynb)#(code|markdown)\.[a-z0-9]+$/i;

/** A notebook this large is mostly outputs; its cells are still read (they are what counts). */
export const MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024;

export function isNotebook(relPath: string): boolean {
  return relPath.toLowerCase().endsWith('.ipynb');
}

/** The real file behind a path: the notebook for one of its parts, else the path itself. */
export function realPathOf(relPath: string): string {
  return VIRTUAL.exec(relPath)?.[1] ?? relPath;
}

export function isNotebookPart(relPath: string): boolean {
  return VIRTUAL.test(relPath);
}

export interface NotebookPart {
  /** The part's virtual path, relative like the notebook's. */
  relPath: string;
  text: string;
}

const cellText = (source: unknown): string => (typeof source === 'string' ? source : Array.isArray(source) ? source.filter((s) => typeof s === 'string').join('') : '');

/** The two parts of a parsed notebook (either may be absent); pure. */
export function notebookParts(relPath: string, nb: unknown): NotebookPart[] {
  if (!isObject(nb) || !Array.isArray(nb['cells'])) return [];
  const meta = isObject(nb['metadata']) ? nb['metadata'] : {};
  const kernel = isObject(meta['kernelspec']) && typeof meta['kernelspec']['language'] === 'string' ? meta['kernelspec']['language'] : undefined;
  const info = isObject(meta['language_info']) && typeof meta['language_info']['name'] === 'string' ? meta['language_info']['name'] : undefined;
  const language = (kernel ?? info ?? 'python').toLowerCase();
  const ext = extensionsOfLanguages([language])[0]?.slice(1) ?? 'txt';
  const code: string[] = [];
  const markdown: string[] = [];
  for (const cell of nb['cells'] as unknown[]) {
    if (!isObject(cell)) continue;
    const text = cellText(cell['source']).trimEnd();
    if (!text) continue;
    if (cell['cell_type'] === 'code') code.push(text);
    else if (cell['cell_type'] === 'markdown') markdown.push(text);
  }
  return [
    ...(code.length ? [{ relPath: `${relPath}#code.${ext}`, text: code.join('\n\n') + '\n' }] : []),
    ...(markdown.length ? [{ relPath: `${relPath}#markdown.md`, text: markdown.join('\n\n') + '\n' }] : []),
  ];
}

/**
 * A build asks for a notebook's parts several times (the scan, the deduplication, each part's
 * document): the last few parsed notebooks are kept, keyed by path, size and modification time.
 */
const parsed = new LruCache<string, NotebookPart[]>(8);

/** The parts of the notebook file at `absPath` ([] when it is not a readable notebook). */
export function readNotebookParts(absPath: string, relPath: string): NotebookPart[] {
  try {
    const st = statSync(absPath);
    const key = `${absPath}\0${relPath}\0${st.size}\0${st.mtimeMs}`;
    let parts = parsed.get(key);
    if (!parts) parsed.set(key, (parts = notebookParts(relPath, JSON.parse(readFileSync(absPath, 'utf8')))));
    return parts;
  } catch {
    return [];
  }
}

/**
 * The text a dataset path stands for: a file's bytes, or a notebook part's cells. Undefined when
 * it is gone (or the notebook no longer has that part).
 */
export function readDocument(absPathOfReal: string, relPath: string): Buffer | undefined {
  try {
    if (!isNotebookPart(relPath)) return readFileSync(absPathOfReal);
    const part = readNotebookParts(absPathOfReal, realPathOf(relPath)).find((p) => p.relPath === relPath);
    return part ? Buffer.from(part.text, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}
