import { readJsonObjectOr } from '../util/json';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { writeJsonAtomic } from '../util/atomic';

/**
 * Which experts are detached and which one is pinned: workspace state, kept apart from the adapter
 * files (an exported expert carries no such state) in `.moa/state.json`, shared by CLI and editor.
 */
export interface ExpertState {
  detached: string[];
  pinned: string | null;
}

const EMPTY: ExpertState = { detached: [], pinned: null };

export function statePath(layout: WorkspaceLayout): string {
  return join(layout.moaDir, 'state.json');
}

/** A missing or unreadable state file means every expert attached, nothing pinned. */
export function readExpertState(layout: WorkspaceLayout): ExpertState {
  const raw = readJsonObjectOr(statePath(layout));
  if (!raw) return { ...EMPTY, detached: [] };
  return {
    detached: Array.isArray(raw['detached']) ? raw['detached'].filter((x): x is string => typeof x === 'string') : [],
    pinned: typeof raw['pinned'] === 'string' ? raw['pinned'] : null,
  };
}

function write(layout: WorkspaceLayout, state: ExpertState): ExpertState {
  writeJsonAtomic(statePath(layout), { v: 1, ...state });
  return state;
}

export function setAttached(layout: WorkspaceLayout, name: string, attached: boolean): ExpertState {
  const s = readExpertState(layout);
  const detached = new Set(s.detached);
  if (attached) detached.delete(name);
  else detached.add(name);
  return write(layout, { detached: [...detached].sort(), pinned: !attached && s.pinned === name ? null : s.pinned });
}

export function setPinned(layout: WorkspaceLayout, name: string | null): ExpertState {
  const s = readExpertState(layout);
  return write(layout, { detached: name ? s.detached.filter((d) => d !== name) : s.detached, pinned: name });
}
