import type { DomainConfig } from '../config/schema';
import { getOrSet } from '../util/maps';
import { domainNameOfLanguage, extensionsOfLanguages, languageOfPath } from './languages';

export interface FileSample {
  relPath: string;
  size: number;
}

export interface SuggestOptions {
  /** A language needs at least this many files … */
  minFiles: number;
  /** … and this many bytes to become a domain: a lone config file is not a domain. */
  minBytes: number;
}

// Three files at least: with fewer, one held-out file would be a third or half of the domain.
export const DEFAULT_SUGGEST: SuggestOptions = { minFiles: 3, minBytes: 2048 };

/** Domains from a language histogram of the workspace, largest first. Pure: the scan happens elsewhere. */
export function suggestDomains(files: Iterable<FileSample>, opts: SuggestOptions = DEFAULT_SUGGEST): DomainConfig[] {
  const hist = new Map<string, { files: number; bytes: number; languages: Set<string> }>();
  for (const f of files) {
    const lang = languageOfPath(f.relPath);
    if (!lang || lang === 'json' || lang === 'plaintext') continue;
    const name = domainNameOfLanguage(lang);
    const h = getOrSet(hist, name, () => ({ files: 0, bytes: 0, languages: new Set<string>() }));
    h.files += 1;
    h.bytes += f.size;
    h.languages.add(lang);
  }
  return [...hist.entries()]
    .filter(([, h]) => h.files >= opts.minFiles && h.bytes >= opts.minBytes)
    .sort((a, b) => b[1].bytes - a[1].bytes || a[0].localeCompare(b[0]))
    .map(([name, h]) => {
      const languages = [...h.languages].sort();
      const exts = extensionsOfLanguages(languages).map((e) => e.slice(1)).sort();
      const include = exts.length === 1 ? [`**/*.${exts[0]}`] : [`**/*.{${exts.join(',')}}`];
      return { name, include, exclude: [], languages };
    });
}
