import { join } from 'node:path';
import type { MoaConfig } from '../config/schema';
import { usableExperts } from '../adapters/store';
import { readExpertState, type ExpertState } from '../adapters/state';
import { loadLearnedRouter, readRouterInfo, type LearnedRouter, type RouterInfo } from '../adapters/router';
import { MoaError } from '../util/errors';
import { folderStamp } from '../util/folderStamp';
import type { WorkspaceLayout } from '../paths';
import { resolveRoute, type RouteDecision } from './resolve';

/**
 * A workspace's routes, with no model: which experts are usable and attached, the trained router
 * when it can serve, and the route `resolveRoute` gives. Completions, the status bar, `moa route`
 * and `moa serve`'s model list all ask here. What it reads is read again only when its folder
 * changed, since this runs on every request and cursor move.
 */
export class WorkspaceRouter {
  private listing?: { stamp: string; usable: string[] };
  private routerRead?: { stamp: string; info: RouterInfo | undefined; learned?: LearnedRouter };

  constructor(
    private readonly layout: WorkspaceLayout,
    private readonly config: MoaConfig,
  ) {}

  /** The experts that load (re-listed when the folder changed: listing reads each expert's files). */
  usableExperts(): string[] {
    const dir = this.layout.expertsDir;
    const stamp = folderStamp(dir);
    if (this.listing?.stamp !== stamp) this.listing = { stamp, usable: usableExperts(dir).map((e) => e.name) };
    return this.listing.usable;
  }

  /** The experts a request can name: usable and not detached. */
  attachedExperts(): string[] {
    return [...this.attached(readExpertState(this.layout))];
  }

  private attached(state: ExpertState): Set<string> {
    return new Set(this.usableExperts().filter((e) => !state.detached.includes(e)));
  }

  /** router.json as last read (reading it hashes the weights: again only when the folder changed). */
  private routerInfo(): RouterInfo | undefined {
    const stamp = folderStamp(this.layout.routerDir);
    if (this.routerRead?.stamp !== stamp) this.routerRead = { stamp, info: readRouterInfo(this.layout.routerDir) };
    return this.routerRead.info;
  }

  /** The trained router, when it is whole and every expert it routes among is attached. */
  private usableRouter(attached: Set<string>): RouterInfo | undefined {
    const info = this.routerInfo();
    if (!info || info.status !== 'ok' || info.experts.length < 2) return undefined;
    return info.experts.every((e) => attached.has(e)) ? info : undefined;
  }

  /**
   * The route at a cursor (`prefix`: the text before it), or the file's route without one. A route
   * with `byRouter` is decided on the prompt's tokens: `learnedRoute` (routing/learned.ts).
   */
  route(relPath: string, languageId?: string, prefix?: string): RouteDecision {
    const state = readExpertState(this.layout);
    const attached = this.attached(state);
    const router = this.config.routing.mode === 'off' ? undefined : this.usableRouter(attached);
    return resolveRoute(this.config, { relPath, languageId, prefix, attached, pinned: state.pinned, router: router?.experts });
  }

  /**
   * The learned router's table, for a route with `byRouter`: from the router.json that route was
   * decided with (no second look at the folder), loaded once per change of it.
   */
  learned(): LearnedRouter {
    const read = this.routerRead;
    if (!read?.info) throw new MoaError(`${this.layout.routerDir}: no router`, 'Run "moa train" first.');
    read.learned ??= loadLearnedRouter(this.layout.routerDir, read.info);
    return read.learned;
  }

  /** This expert alone, whatever the routing mode (e.g. to compare experts on one prompt). */
  forced(name: string): RouteDecision {
    const ok = this.usableExperts();
    if (!ok.includes(name)) throw new MoaError(`${join(this.layout.expertsDir, name)}: no usable expert "${name}"`, ok.length ? `Experts: ${ok.join(', ')}.` : 'Run "moa train" first.');
    return { mode: 'pinned', experts: [{ name, weight: 1 }], reason: `expert ${name} asked for this request (routing bypassed)` };
  }
}
