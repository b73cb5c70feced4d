import picomatch from 'picomatch';
import type { DomainConfig } from '../config/schema';
import { languageOfPath } from './languages';

export interface DomainMatcher {
  /** The domain a workspace-relative path (forward slashes) belongs to: the first that matches. */
  domainOf(relPath: string, languageId?: string): string | undefined;
}

export function compileDomains(domains: DomainConfig[]): DomainMatcher {
  const compiled = domains.map((d) => ({
    name: d.name,
    include: d.include.length ? picomatch(d.include, { dot: true }) : undefined,
    exclude: d.exclude.length ? picomatch(d.exclude, { dot: true }) : undefined,
    languages: new Set(d.languages),
  }));
  return {
    domainOf(relPath, languageId) {
      const lang = languageId ?? languageOfPath(relPath);
      for (const d of compiled) {
        if (d.exclude?.(relPath)) continue;
        if (d.include?.(relPath) || (lang !== undefined && d.languages.has(lang))) return d.name;
      }
      return undefined;
    },
  };
}
