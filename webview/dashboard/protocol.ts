/** Messages between the training dashboard webview and its host. Both sides import this file. */
import type { CurveEval, CurveStep, RunUpdate, RunView } from '../../src/core/trainer/runView';

export interface SeriesPoint {
  step: number;
  loss: number;
}

/** The points and updates are core's own types (core/trainer/runView.ts): shared, not copied. */
export type DashboardStep = CurveStep;
export type DashboardEval = CurveEval;

/** Host → webview. */
export type HostMessage = ({ type: 'reset' } & RunView) | RunUpdate;

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
