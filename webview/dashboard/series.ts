/**
 * The dashboard's data: every point is kept; what is drawn is a downsampled, x-aligned view
 * (uPlot wants one shared x array). Stages follow each other on one x axis: a stage's steps
 * start where the previous stage's ended.
 */
export interface LossPoint {
  stage: string;
  expert: string;
  step: number;
  loss: number;
}

export interface AlignedView {
  /** Series names in column order: `<expert>` (train) and `<expert> (held-out)`. */
  names: string[];
  heldOut: boolean[];
  data: [number[], ...(number | null)[][]];
  points: number;
}

/** One series' points, in arrays that grow: 100,000 points of a long run stay cheap to hold and to scan. */
class Points {
  x: number[] = [];
  y: number[] = [];
  push(x: number, y: number): void {
    this.x.push(x);
    this.y.push(y);
  }
  get length(): number {
    return this.x.length;
  }
}

export class LossSeries {
  private readonly train = new Map<string, Points>();
  private readonly held = new Map<string, Points>();
  private readonly stageOffset = new Map<string, number>();
  private stageEnd = 0;

  private x(stage: string, step: number): number {
    let offset = this.stageOffset.get(stage);
    if (offset === undefined) {
      offset = this.stageEnd;
      this.stageOffset.set(stage, offset);
    }
    this.stageEnd = Math.max(this.stageEnd, offset + step);
    return offset + step;
  }

  private add(into: Map<string, Points>, p: LossPoint): void {
    if (!Number.isFinite(p.loss)) return;
    let list = into.get(p.expert);
    if (!list) into.set(p.expert, (list = new Points()));
    list.push(this.x(p.stage, p.step), p.loss);
  }

  addStep(p: LossPoint): void {
    this.add(this.train, p);
  }

  addEval(p: LossPoint): void {
    this.add(this.held, p);
  }

  clear(): void {
    this.train.clear();
    this.held.clear();
    this.stageOffset.clear();
    this.stageEnd = 0;
  }

  get pointCount(): number {
    let n = 0;
    for (const l of this.train.values()) n += l.length;
    for (const l of this.held.values()) n += l.length;
    return n;
  }

  /**
   * At most `maxX` x positions: each bucket of steps drawn as the mean of its losses. Redrawn every
   * frame while a run streams, so one pass over typed sums, never a map per point.
   */
  view(maxX: number): AlignedView {
    const cols: { name: string; held: boolean; pts: Points }[] = [];
    for (const name of [...new Set([...this.train.keys(), ...this.held.keys()])].sort()) {
      if (this.train.has(name)) cols.push({ name, held: false, pts: this.train.get(name)! });
      if (this.held.has(name)) cols.push({ name: `${name} (held-out)`, held: true, pts: this.held.get(name)! });
    }
    const xMax = this.stageEnd; // every point's x went through x(), which keeps the largest
    const bucket = Math.max(1, Math.ceil(xMax / Math.max(1, maxX)));
    const slots = Math.ceil(xMax / bucket) + 1;
    const used = new Uint8Array(slots);
    const sums = cols.map((c) => {
      const s = new Float64Array(slots);
      const n = new Uint32Array(slots);
      const { x, y } = c.pts;
      for (let i = 0; i < x.length; i++) {
        const b = Math.ceil(x[i]! / bucket);
        s[b] = s[b]! + y[i]!;
        n[b] = n[b]! + 1;
        used[b] = 1;
      }
      return { s, n };
    });
    const slotsUsed: number[] = [];
    for (let b = 0; b < slots; b++) if (used[b]) slotsUsed.push(b);
    const data = [slotsUsed.map((b) => b * bucket), ...sums.map(({ s, n }) => slotsUsed.map((b) => (n[b] ? s[b]! / n[b]! : null)))] as AlignedView['data'];
    return { names: cols.map((c) => c.name), heldOut: cols.map((c) => c.held), data, points: this.pointCount };
  }
}
