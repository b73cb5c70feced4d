export interface Point {
  x: number;
  y: number;
}

/**
 * At most `max` points: consecutive buckets drawn as the mean of their points. The first and last
 * points are kept as they are, so a curve still starts and ends where the run did.
 */
export function downsample(points: Point[], max: number): Point[] {
  if (points.length <= max || max < 3) return points.slice();
  const inner = points.slice(1, -1);
  const buckets = max - 2;
  const out: Point[] = [points[0]!];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * inner.length) / buckets);
    const to = Math.floor(((b + 1) * inner.length) / buckets);
    if (to <= from) continue;
    let sx = 0;
    let sy = 0;
    for (let i = from; i < to; i++) {
      sx += inner[i]!.x;
      sy += inner[i]!.y;
    }
    out.push({ x: sx / (to - from), y: sy / (to - from) });
  }
  out.push(points[points.length - 1]!);
  return out;
}
