import { loadConfig } from '../config/load';
import { setRoutingMode } from '../config/edit';
import { setPinned, type ExpertState } from '../adapters/state';
import type { WorkspaceLayout } from '../paths';

/**
 * Pinning, one behaviour for the editor and the CLI: a pinned expert serves every file, so
 * pinning also sets `routing.mode` to `pinned`, and unpinning puts a pinned mode back to `label`
 * (any other mode is left as the user chose it).
 */
export function pinExpert(layout: WorkspaceLayout, name: string): { state: ExpertState; mode: string } {
  const state = setPinned(layout, name);
  if (loadConfig(layout.configFile).config.routing.mode !== 'pinned') setRoutingMode(layout.configFile, 'pinned');
  return { state, mode: 'pinned' };
}

export function unpinExpert(layout: WorkspaceLayout): { state: ExpertState; mode: string } {
  const state = setPinned(layout, null);
  let mode: string = loadConfig(layout.configFile).config.routing.mode;
  if (mode === 'pinned') setRoutingMode(layout.configFile, (mode = 'label'));
  return { state, mode };
}
