/**
 * Where in a JSON text a problem is, as a 1-based line, so that an editor can open the file there:
 * the value at a validator's JSON path (`$.training.steps`, `$.domains[1].name`), or where the
 * text stops being JSON (Node 20's JSON.parse messages do not always say).
 */

/** `$.a.b[2].c` → ['a', 'b', 2, 'c']. */
export function parseJsonPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.replace(/^\$/, '').matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

const lineAt = (text: string, offset: number) => text.slice(0, offset).split('\n').length;

// Sticky: each matches at lastIndex only, so a long text is never copied.
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const SCALAR = /(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/y;

class SyntaxAt {
  constructor(readonly offset: number) {}
}

/**
 * Walks `text` as strict JSON, calling `enter(key path, offset)` at the start of every value;
 * throws SyntaxAt where it stops being JSON.
 */
function walk(text: string, enter: (path: readonly (string | number)[], offset: number) => void): void {
  let i = 0;
  const path: (string | number)[] = [];
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) throw new SyntaxAt(i);
    i++;
  };
  const str = (): string => {
    if (text[i] !== '"') throw new SyntaxAt(i);
    STRING.lastIndex = i;
    const m = STRING.exec(text);
    if (!m) throw new SyntaxAt(i);
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const value = (): void => {
    ws();
    enter(path, i);
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) return void i++;
      for (let n = 0; ; n++) {
        if (c === '{') {
          ws();
          path.push(str());
          expect(':');
        } else path.push(n);
        value();
        path.pop();
        ws();
        if (text[i] === ',') i++;
        else return expect(c === '{' ? '}' : ']');
      }
    }
    if (c === '"') return void str();
    SCALAR.lastIndex = i;
    const m = SCALAR.exec(text);
    if (!m) throw new SyntaxAt(i);
    i += m[0].length;
  };
  value();
  ws();
  if (i < text.length) throw new SyntaxAt(i);
}

/**
 * The line of the value at `path` in `text`, or of the deepest part of the path that exists (a
 * missing key: the object that should hold it); 1 when nothing of it is found or the text is not JSON.
 */
export function lineOfJsonPath(text: string, path: string): number {
  const want = parseJsonPath(path);
  let best = 0;
  let bestDepth = 0;
  try {
    walk(text, (at, offset) => {
      const depth = at.length;
      if (depth > bestDepth && depth <= want.length && at.every((k, j) => k === want[j])) {
        best = offset;
        bestDepth = depth;
      }
    });
  } catch {
    return 1;
  }
  return lineAt(text, best);
}

/** The line where `text` stops being JSON; undefined when it is JSON. */
export function lineOfJsonError(text: string): number | undefined {
  try {
    walk(text, () => undefined);
    return undefined;
  } catch (e) {
    // Nesting deeper than the stack: no line to give, and never an error of its own.
    return e instanceof SyntaxAt ? lineAt(text, e.offset) : undefined;
  }
}
