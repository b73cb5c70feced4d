/**
 * Splits a byte stream into lines and parses the JSON ones. Robust to chunks split anywhere
 * (even inside a UTF-8 character), non-JSON noise, invalid UTF-8 and absurdly long lines.
 */
export interface LineHandlers {
  onJson(value: unknown): void;
  onNoise(line: string): void;
}

export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class JsonLineParser {
  private chunks: Buffer[] = [];
  private pending = 0;
  private overflow = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(
    private readonly handlers: LineHandlers,
    private readonly maxLineBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Uint8Array): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        this.keep(chunk.subarray(start));
        return;
      }
      this.keep(chunk.subarray(start, nl));
      this.flushLine();
      start = nl + 1;
    }
  }

  /** Call at end of stream: a last line without a newline still counts. */
  end(): void {
    if (this.pending > 0 || this.overflow) this.flushLine();
  }

  private keep(part: Uint8Array): void {
    if (part.length === 0 || this.overflow) return;
    if (this.pending + part.length > this.maxLineBytes) {
      this.overflow = true;
      this.chunks = [];
      this.pending = 0;
      return;
    }
    this.chunks.push(Buffer.from(part));
    this.pending += part.length;
  }

  private flushLine(): void {
    if (this.overflow) {
      this.overflow = false;
      this.handlers.onNoise(`[line longer than ${this.maxLineBytes} bytes dropped]`);
      return;
    }
    const line = this.decoder.decode(Buffer.concat(this.chunks, this.pending)).replace(/\r$/, '');
    this.chunks = [];
    this.pending = 0;
    if (line.trim() === '') return;
    if (line.startsWith('{')) {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        // a line that looks like JSON but is not is noise like any other
        this.handlers.onNoise(line);
        return;
      }
      // Outside the try: a handler's own failure (a full disk while persisting the event) is
      // its caller's to handle, never mistaken for a malformed line.
      this.handlers.onJson(value);
      return;
    }
    this.handlers.onNoise(line);
  }
}
