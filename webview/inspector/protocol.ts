import type { ExpertInspection } from '../../src/core/adapters/inspection';

/** Messages between the expert inspector webview and its host. The data is exactly what core
 * computes: the type is shared, not copied. */
export type InspectorData = ExpertInspection;

export type InspectorHostMessage = { type: 'show'; data: InspectorData } | { type: 'error'; message: string };
export type InspectorWebviewMessage = { type: 'ready' };

export function parseInspectorMessage(value: unknown): InspectorWebviewMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Object.keys(value).length === 1 && (value as { type?: unknown }).type === 'ready' ? { type: 'ready' } : undefined;
}
