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

export class LossSeries {
  private readonly train = new Map<string, { x: number; y: number }[]>();
  private readonly held = new Map<string, { x: number; y: number }[]>();
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

  addStep(p: LossPoint): void {
    if (!Number.isFinite(p.loss)) return;
    const list = this.train.get(p.expert) ?? [];
    list.push({ x: this.x(p.stage, p.step), y: p.loss });
    this.train.set(p.expert, list);
  }

  addEval(p: LossPoint): void {
    if (!Number.isFinite(p.loss)) return;
    const list = this.held.get(p.expert) ?? [];
    list.push({ x: this.x(p.stage, p.step), y: p.loss });
    this.held.set(p.expert, list);
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

  /** At most `maxX` x positions: each bucket of steps drawn as the mean of its losses. */
  view(maxX: number): AlignedView {
    const cols: { name: string; held: boolean; pts: { x: number; y: number }[] }[] = [];
    for (const name of [...new Set([...this.train.keys(), ...this.held.keys()])].sort()) {
      if (this.train.has(name)) cols.push({ name, held: false, pts: this.train.get(name)! });
      if (this.held.has(name)) cols.push({ name: `${name} (held-out)`, held: true, pts: this.held.get(name)! });
    }
    const xMax = Math.max(0, ...cols.flatMap((c) => (c.pts.length ? [c.pts[c.pts.length - 1]!.x] : [])));
    const bucket = Math.max(1, Math.ceil(xMax / Math.max(1, maxX)));
    const xs = new Set<number>();
    const sums = cols.map(() => new Map<number, { s: number; n: number }>());
    cols.forEach((c, i) => {
      for (const p of c.pts) {
        const bx = bucket === 1 ? p.x : Math.ceil(p.x / bucket) * bucket;
        xs.add(bx);
        const acc = sums[i]!.get(bx) ?? { s: 0, n: 0 };
        acc.s += p.y;
        acc.n += 1;
        sums[i]!.set(bx, acc);
      }
    });
    const x = [...xs].sort((a, b) => a - b);
    const data = [x, ...sums.map((m) => x.map((bx) => {
      const acc = m.get(bx);
      return acc ? acc.s / acc.n : null;
    }))] as AlignedView['data'];
    return { names: cols.map((c) => c.name), heldOut: cols.map((c) => c.held), data, points: this.pointCount };
  }
}
