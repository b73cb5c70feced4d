/** Messages between the expert inspector webview and its host. */
export interface InspectorModuleStats {
  layer: number;
  module: string;
  norm: number;
  sigma: number[];
  effectiveRank: number;
}

export interface InspectorData {
  expert: string;
  r: number;
  alpha: number;
  targetModules: string[];
  parameters: number;
  sizeBytes: number;
  meta: Record<string, unknown>;
  data: { files: number; bytes: number; trainTokens: number; valTokens: number } | null;
  stats: InspectorModuleStats[];
  curve: { step: number; loss: number }[];
  /** Cosine similarity of every pair of experts' updates. */
  similarity: { experts: string[]; matrix: number[][] };
  evalMatrix: { domains: string[]; experts: string[]; values: number[][] } | null;
  routerConfusion: { domains: string[]; experts: string[]; values: number[][] } | null;
}

export type InspectorHostMessage = { type: 'show'; data: InspectorData } | { type: 'error'; message: string };
export type InspectorWebviewMessage = { type: 'ready' };

export function parseInspectorMessage(value: unknown): InspectorWebviewMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Object.keys(value).length === 1 && (value as { type?: unknown }).type === 'ready' ? { type: 'ready' } : undefined;
}
