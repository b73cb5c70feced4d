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
