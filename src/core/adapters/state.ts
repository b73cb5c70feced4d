import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspaceLayout } from '../paths';
import { writeJsonAtomic } from '../util/atomic';
import { MoaError, errorMessage } from '../util/errors';
import { isObject, readJsonObject } from '../util/json';
import { withLock } from '../util/pidLock';
import { SAFE_NAME } from '../names';

/**
 * Which experts are detached and which one is pinned: workspace state, kept apart from the adapter
 * files (an exported expert carries no such state) in `.moa/state.json`, shared by CLI and editor.
 */
export interface ExpertState {
  detached: string[];
  pinned: string | null;
  /** Set when state.json exists but could not be used: what was wrong (the state above is the default). */
  problem?: string;
}

export function statePath(layout: WorkspaceLayout): string {
  return join(layout.moaDir, 'state.json');
}

/** The rules of `readExpertState` on a parsed state.json (pure: the fuzz tests feed it anything). */
export function expertStateFrom(file: string, raw: unknown): ExpertState {
  if (!isObject(raw)) throw new MoaError(`${file}: expected a JSON object`);
  const names = (v: unknown, key: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !SAFE_NAME.test(x))) throw new MoaError(`${file}: "${key}" must be a list of expert names`);
    return [...new Set(v as string[])].sort();
  };
  const pinned = raw['pinned'] ?? null;
  if (pinned !== null && (typeof pinned !== 'string' || !SAFE_NAME.test(pinned))) throw new MoaError(`${file}: "pinned" must be an expert name or null`);
  return { detached: names(raw['detached'], 'detached'), pinned };
}

/**
 * A missing state file means every expert attached, nothing pinned. One that cannot be read says
 * so in `problem` (shown by the tree and `moa experts list`) instead of silently meaning the same.
 */
export function readExpertState(layout: WorkspaceLayout): ExpertState {
  const file = statePath(layout);
  if (!existsSync(file)) return { detached: [], pinned: null };
  try {
    return expertStateFrom(file, readJsonObject(file));
  } catch (e) {
    return { detached: [], pinned: null, problem: `${errorMessage(e)}; every expert counts as attached until the state is written again` };
  }
}

/** Read, change, write under a lock: two commands at once must not lose either change. */
function update(layout: WorkspaceLayout, change: (s: ExpertState) => ExpertState): ExpertState {
  mkdirSync(layout.moaDir, { recursive: true });
  const lock = join(layout.moaDir, '.state.lock');
  return withLock(
    lock,
    () => {
      const next = change(readExpertState(layout));
      writeJsonAtomic(statePath(layout), { v: 1, detached: next.detached, pinned: next.pinned });
      return { detached: next.detached, pinned: next.pinned };
    },
    10_000,
    (holder) => new MoaError(`${lock}: process ${holder.pid} is changing the experts' state`, 'Try again in a moment.'),
  );
}

export function setAttached(layout: WorkspaceLayout, name: string, attached: boolean): ExpertState {
  return update(layout, (s) => {
    const detached = new Set(s.detached);
    if (attached) detached.delete(name);
    else detached.add(name);
    return { detached: [...detached].sort(), pinned: !attached && s.pinned === name ? null : s.pinned };
  });
}

export function setPinned(layout: WorkspaceLayout, name: string | null): ExpertState {
  return update(layout, (s) => ({ detached: name ? s.detached.filter((d) => d !== name) : s.detached, pinned: name }));
}
