/** File extension → VS Code language id, for the kinds of content a workspace typically mixes. */
const BY_EXTENSION: Record<string, string> = {
  '.py': 'python', '.pyi': 'python',
  '.ts': 'typescript', '.tsx': 'typescriptreact', '.mts': 'typescript', '.cts': 'typescript',
  '.js': 'javascript', '.jsx': 'javascriptreact', '.mjs': 'javascript', '.cjs': 'javascript',
  '.md': 'markdown', '.markdown': 'markdown', '.rst': 'restructuredtext', '.txt': 'plaintext',
  '.sql': 'sql', '.tf': 'terraform', '.hcl': 'hcl',
  '.go': 'go', '.rs': 'rust', '.java': 'java', '.kt': 'kotlin', '.scala': 'scala',
  '.c': 'c', '.h': 'c', '.cc': 'cpp', '.cpp': 'cpp', '.hpp': 'cpp', '.cxx': 'cpp',
  '.cs': 'csharp', '.rb': 'ruby', '.php': 'php', '.swift': 'swift', '.lua': 'lua',
  '.sh': 'shellscript', '.bash': 'shellscript', '.yaml': 'yaml', '.yml': 'yaml', '.toml': 'toml',
  '.json': 'json', '.html': 'html', '.css': 'css', '.scss': 'scss', '.vue': 'vue', '.svelte': 'svelte',
  '.r': 'r', '.jl': 'julia', '.dart': 'dart',
};

/** Languages that are one domain even though VS Code splits them (JSX belongs with its language). */
const DOMAIN_OF_LANGUAGE: Record<string, string> = {
  typescriptreact: 'typescript',
  javascriptreact: 'javascript',
};

export function languageOfPath(path: string): string | undefined {
  const dot = path.lastIndexOf('.');
  const slash = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  if (dot <= slash + 1) return undefined;
  return BY_EXTENSION[path.slice(dot).toLowerCase()];
}

export function domainNameOfLanguage(language: string): string {
  return DOMAIN_OF_LANGUAGE[language] ?? language;
}

/** Extensions that map to any of the given languages, for building include globs. */
export function extensionsOfLanguages(languages: string[]): string[] {
  return Object.entries(BY_EXTENSION)
    .filter(([, lang]) => languages.includes(lang))
    .map(([ext]) => ext);
}

/** Language ids MoA recognises in `languages`: those it maps extensions to, and VS Code's other common ones. */
export const KNOWN_LANGUAGES: ReadonlySet<string> = new Set([
  ...Object.values(BY_EXTENSION),
  'dockerfile', 'makefile', 'powershell', 'bat', 'perl', 'r', 'dart', 'groovy', 'objective-c', 'xml', 'jsonc',
  'less', 'latex', 'graphql', 'proto', 'ini', 'properties', 'diff', 'jupyter', 'haskell', 'elixir', 'erlang', 'clojure',
  'fsharp', 'julia', 'zig', 'nim', 'ocaml', 'vb', 'cmake', 'nix',
]);

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known name nearest to `name`, when one is close enough to be a likely typo. */
export function nearest(name: string, known: Iterable<string>): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k);
    if (!best || d < best.d) best = { k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(name.length / 3)) ? best.k : undefined;
}
