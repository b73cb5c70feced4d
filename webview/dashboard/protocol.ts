/** Messages between the training dashboard webview and its host. Both sides import this file. */
export interface SeriesPoint {
  step: number;
  loss: number;
}

export interface DashboardStep {
  expert: string;
  stage: string;
  step: number;
  steps: number;
  loss: number;
  lr: number;
  tokensPerS: number;
  elapsedS: number;
}

export interface DashboardEval {
  stage: string;
  expert: string;
  step: number;
  loss: number;
}

/** Host → webview. */
export type HostMessage =
  | { type: 'reset'; runId: string | null; status: string; device: string | null; worldSize: number; steps: DashboardStep[]; evals: DashboardEval[] }
  | { type: 'step'; step: DashboardStep }
  | { type: 'eval'; eval: DashboardEval }
  | { type: 'status'; status: string; device?: string | null; worldSize?: number };

/** Webview → host. */
export type WebviewMessage = { type: 'ready' } | { type: 'stop' };

/** The host trusts nothing from the webview: anything but these two exact shapes is rejected. */
export function parseWebviewMessage(value: unknown): WebviewMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  const type = (value as { type?: unknown }).type;
  if (keys.length !== 1 || (type !== 'ready' && type !== 'stop')) return undefined;
  return { type };
}
