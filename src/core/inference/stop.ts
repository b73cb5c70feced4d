/** Where an inline completion ends: never early, at the end of its line, or at the end of its block. */
export type StopMode = 'none' | 'line' | 'block';

/**
 * Cuts generated text at the stop rule. Leading newlines and indentation do not count as the
 * first line: after `def f():` the completion may start on the next line. Returns the text to
 * keep and whether generation can stop.
 */
export function applyStop(text: string, mode: StopMode): { text: string; done: boolean } {
  if (mode === 'none') return { text, done: false };
  const start = text.search(/\S/);
  if (start < 0) return { text, done: false };
  if (mode === 'line') {
    const nl = text.indexOf('\n', start);
    return nl < 0 ? { text, done: false } : { text: text.slice(0, nl), done: true };
  }
  const blank = /\n[ \t]*\r?\n/.exec(text.slice(start));
  return blank ? { text: text.slice(0, start + blank.index), done: true } : { text, done: false };
}
