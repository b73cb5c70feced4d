import { closeSync, existsSync, readSync } from 'node:fs';
import { openRegularFile } from '../util/fsRead';
import { parseTrainerEvent, type TrainerEvent } from './events';
import { JsonLineParser } from './jsonLines';

/**
 * Reads a run's events.jsonl as it grows, written by a trainer this process did not start (another
 * machine over a shared file system: `moa train --print-launch`). Each `read` returns the whole
 * events appended since the last one; a line still being written waits for its newline; a file
 * that shrank (replaced) is read again from its start.
 */
export class EventTail {
  private offset = 0;
  private parser: JsonLineParser;
  private found: TrainerEvent[] = [];

  constructor(private readonly file: string) {
    this.parser = this.newParser();
  }

  private newParser(): JsonLineParser {
    return new JsonLineParser({
      onJson: (value) => {
        const parsed = parseTrainerEvent(value);
        if (parsed.ok) this.found.push(parsed.event);
      },
      onNoise: () => undefined,
    });
  }

  read(): TrainerEvent[] {
    if (!existsSync(this.file)) return [];
    const { fd, st } = openRegularFile(this.file);
    try {
      if (st.size < this.offset) {
        this.offset = 0;
        this.parser = this.newParser();
      }
      const buf = Buffer.allocUnsafe(Math.max(1, Math.min(1 << 20, st.size - this.offset)));
      while (this.offset < st.size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, st.size - this.offset), this.offset);
        if (n === 0) break;
        this.parser.push(buf.subarray(0, n));
        this.offset += n;
      }
    } finally {
      closeSync(fd);
    }
    return this.found.splice(0);
  }
}
