import picomatch from 'picomatch';
import type { DomainConfig } from '../config/schema';
import { domainNameOfLanguage, languageOfPath } from './languages';

export interface DomainMatcher {
  /**
   * The domain a workspace-relative path (forward slashes) belongs to: the first that matches.
   * A domain matches a file its `include` globs match (all files when it has none) whose
   * language is one of its `languages` (any language when it lists none), unless `exclude` does.
   */
  domainOf(relPath: string, languageId?: string): string | undefined;
  /**
   * The domain text in this language belongs to, wherever it sits (a fenced block): the first
   * domain that lists the language, else one named after it.
   */
  domainOfLanguage(languageId: string): string | undefined;
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
        // `include` says where, `languages` says what: given both, a file must satisfy both, so a
        // glob narrows a domain (and a typo in one shows up as an empty domain, not as no change).
        const where = d.include ? d.include(relPath) : true;
        const what = d.languages.size ? lang !== undefined && d.languages.has(lang) : true;
        if (where && what) return d.name;
      }
      return undefined;
    },
    domainOfLanguage(languageId) {
      const named = domainNameOfLanguage(languageId);
      return (compiled.find((d) => d.languages.has(languageId)) ?? compiled.find((d) => d.name === named || d.name === languageId))?.name;
    },
  };
}
