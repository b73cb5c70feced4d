/**
 * What the text just before the cursor is written in, when that differs from the file: a fenced
 * code block in Markdown, or a SQL string in code. A file is not one domain, and routing at the
 * cursor starts from here.
 */
export interface EmbeddedBlock {
  kind: 'fence' | 'sql-string';
  /** The fence's info word as written (```py), or 'sql'. Empty for a bare fence. */
  tag: string;
  /** The VS Code language id the tag names, when it names one MoA knows. */
  language?: string;
  /** 1-based line of the opening fence or quote. */
  line: number;
  /** Offset in the prefix where the block starts (the opening fence line, or the string's text). */
  start: number;
}

/** Fence info words and the language ids they mean (GitHub's common aliases; the id itself also works). */
const FENCE_ALIASES: Record<string, string> = {
  py: 'python', python3: 'python', py3: 'python', ipython: 'python', pycon: 'python',
  js: 'javascript', node: 'javascript', mjs: 'javascript', cjs: 'javascript', jsx: 'javascriptreact',
  ts: 'typescript', tsx: 'typescriptreact', mts: 'typescript',
  sh: 'shellscript', bash: 'shellscript', shell: 'shellscript', zsh: 'shellscript', console: 'shellscript', shellsession: 'shellscript',
  yml: 'yaml', md: 'markdown', tf: 'terraform', hcl: 'terraform', rs: 'rust', golang: 'go', rb: 'ruby', kt: 'kotlin',
  'c++': 'cpp', cc: 'cpp', 'c#': 'csharp', cs: 'csharp', psql: 'sql', postgresql: 'sql', mysql: 'sql', sqlite: 'sql',
  docker: 'dockerfile', make: 'makefile', ps1: 'powershell', json5: 'jsonc',
};

/** The language id a fence's info word names ("```Python {.numberLines}" → python), or undefined. */
export function languageOfFenceTag(tag: string, known: ReadonlySet<string>): string | undefined {
  const word = tag.trim().split(/[\s{,]/)[0]!.toLowerCase().replace(/^\./, '');
  if (!word) return undefined;
  const id = FENCE_ALIASES[word] ?? word;
  return known.has(id) ? id : undefined;
}

const PROSE = new Set(['markdown', 'mdx', 'restructuredtext', 'plaintext', 'jupyter']);
const STRING_SQL = new Set(['python', 'javascript', 'typescript', 'javascriptreact', 'typescriptreact', 'java', 'go', 'ruby', 'php', 'kotlin', 'scala', 'csharp', 'rust']);
const SQL_START = /^\s*(select|with|insert|update|delete|create|alter|drop|merge)\b/i;

/**
 * The block the cursor is in, from the text before it (`prefix`) and the file's language: an
 * unclosed fence in prose (the cursor on a line after the opening fence), or a triple-quoted or
 * backtick string in code whose text starts like SQL. Undefined when the cursor is in the file's
 * own language.
 */
export function blockAtCursor(prefix: string, fileLanguage: string | undefined, known: ReadonlySet<string>): EmbeddedBlock | undefined {
  if (fileLanguage && PROSE.has(fileLanguage)) return openFence(prefix, known);
  if (fileLanguage && STRING_SQL.has(fileLanguage)) return openSqlString(prefix, fileLanguage, known);
  return undefined;
}

function openFence(prefix: string, known: ReadonlySet<string>): EmbeddedBlock | undefined {
  let open: { fence: string; tag: string; line: number; start: number } | undefined;
  let offset = 0;
  const lines = prefix.split('\n');
  // The last line is the one the cursor is on: an opening fence there is not yet a block.
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(text.replace(/\r$/, ''));
    const last = i === lines.length - 1;
    if (m) {
      const fence = m[1]!;
      if (!open) {
        // A backtick fence's info string may not hold a backtick (CommonMark).
        if (!last && !(fence[0] === '`' && m[2]!.includes('`'))) open = { fence, tag: m[2]!.trim(), line: i + 1, start: offset };
      } else if (fence[0] === open.fence[0] && fence.length >= open.fence.length && m[2]!.trim() === '') {
        open = undefined;
      }
    }
    offset += text.length + 1;
  }
  if (!open) return undefined;
  const language = languageOfFenceTag(open.tag, known);
  return { kind: 'fence', tag: open.tag.split(/\s/)[0] ?? '', ...(language ? { language } : {}), line: open.line, start: open.start };
}

function openSqlString(prefix: string, fileLanguage: string, known: ReadonlySet<string>): EmbeddedBlock | undefined {
  // Python's triple quotes, JavaScript's template literals: the strings that hold whole queries.
  const quotes = fileLanguage === 'python' ? ['"""', "'''"] : ['`', '"""'];
  let best: { start: number } | undefined;
  for (const q of quotes) {
    let count = 0;
    let last = -1;
    for (let at = prefix.indexOf(q); at >= 0; at = prefix.indexOf(q, at + q.length)) {
      count++;
      last = at;
    }
    // An odd count: the last quote opened a string the cursor is still in.
    if (count % 2 === 1 && (!best || last + q.length > best.start)) best = { start: last + q.length };
  }
  if (!best || !SQL_START.test(prefix.slice(best.start))) return undefined;
  const line = prefix.slice(0, best.start).split('\n').length;
  return { kind: 'sql-string', tag: 'sql', ...(known.has('sql') ? { language: 'sql' } : {}), line, start: best.start };
}
