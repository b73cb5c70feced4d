import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readRouterInfo } from '../adapters/router';
import { manifestPath, readManifest, type DatasetManifest } from '../data/shards';
import type { EvalReport } from '../eval/evaluate';
import type { WorkspaceLayout } from '../paths';
import type { TrainerEvent } from '../trainer/events';
import { listRuns, readRunLog, runInfo, runStatus, type RunLog } from '../trainer/runs';
import { MoaError, errorMessage } from '../util/errors';
import { readJsonObjectOr } from '../util/json';
import { lossCurves, routerResultsFromEvents, runFacts, type RouterResults, type RunFacts, type StageCurves } from './curves';
import { readEvalReport } from '../eval/evalFile';

interface ReportRun extends RunFacts {
  id: string;
  status: string;
  created?: string;
  finished?: string;
}

/** Everything the HTML report shows, read from a workspace; each part may be missing. */
export interface ReportInput {
  workspace: string;
  generated: string;
  baseModel?: string;
  run?: ReportRun;
  stages: StageCurves[];
  eval?: { report: EvalReport; source: string };
  router?: RouterResults & { source: string };
  dataset?: { manifest: DatasetManifest; source: string };
  /** Files that exist but could not be used, each naming the file: shown in the report and by the CLI. */
  problems: string[];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The run to report on, with its events: the one asked for, else the latest run that trained at
 * least one step. A newer run passed over because its events could not be read is named in
 * `problems`, never skipped in silence.
 */
function chooseRun(layout: WorkspaceLayout, runId: string | undefined, problems: string[]): { id: string; events: TrainerEvent[] } | undefined {
  const runs = listRuns(layout);
  const file = (id: string) => runInfo(layout, id).eventsFile;
  const noteUnreadable = (id: string, log: RunLog) => {
    if (log.problem) problems.push(log.problem);
    else if (log.unreadable) problems.push(`${file(id)}: ${log.unreadable} line${log.unreadable > 1 ? 's' : ''} could not be read as trainer events`);
  };
  if (runId !== undefined) {
    if (!runs.includes(runId)) {
      throw new MoaError(`${join(layout.runsDir, runId)}: no such run`, runs.length ? `Runs in this workspace: ${runs.slice(-5).join(', ')}${runs.length > 5 ? ', …' : ''}.` : 'Run "moa train" first.');
    }
    const log = readRunLog(file(runId));
    noteUnreadable(runId, log);
    return { id: runId, events: log.events };
  }
  let newest: { id: string; log: RunLog } | undefined;
  const passed: string[] = [];
  for (const id of [...runs].reverse()) {
    const log = readRunLog(file(id));
    newest ??= { id, log }; // no run trained: the newest one, read once
    if (log.events.some((e) => e.type === 'step')) {
      noteUnreadable(id, log);
      return { id, events: log.events };
    }
    // Passed over for having no steps: say so when that is because its events were unreadable.
    if (log.problem || log.unreadable) {
      noteUnreadable(id, log);
      passed.push(id);
      problems.push(`run ${id} was passed over: its events file has no readable training step`);
    }
  }
  if (newest && passed.length === 0) noteUnreadable(newest.id, newest.log);
  return newest && { id: newest.id, events: newest.log.events };
}

export function collectReport(layout: WorkspaceLayout, opts: { runId?: string; now?: Date } = {}): ReportInput {
  if (!existsSync(layout.moaDir)) throw new MoaError(`${layout.moaDir}: not a MoA workspace`, 'Run "moa init" first.');
  const problems: string[] = [];
  const input: ReportInput = {
    workspace: layout.root,
    generated: (opts.now ?? new Date()).toISOString(),
    baseModel: str(readJsonObjectOr(layout.configFile)?.['baseModel']),
    stages: [],
    problems,
  };

  const chosen = chooseRun(layout, opts.runId, problems);
  const id = chosen?.id;
  let runRouter: RouterResults | undefined;
  if (chosen && id !== undefined) {
    const { events } = chosen;
    const run = runInfo(layout, id);
    const meta = readJsonObjectOr(run.metaFile);
    if (!meta) problems.push(`${run.metaFile}: missing or not a JSON object`);
    input.run = { id, status: runStatus(layout, id, meta), created: str(meta?.['created']), finished: str(meta?.['finished']), ...runFacts(events) };
    input.stages = lossCurves(events);
    runRouter = routerResultsFromEvents(events);
  }

  const runEval = id ? runInfo(layout, id).evalFile : undefined;
  const evalFile = runEval && existsSync(runEval) ? runEval : join(layout.moaDir, 'eval.json');
  if (existsSync(evalFile)) {
    try {
      const source = evalFile === runEval ? `this run's eval.json` : `.moa/eval.json (the workspace's latest moa eval${id ? ', not saved with this run' : ''})`;
      input.eval = { report: readEvalReport(evalFile), source };
    } catch (e) {
      problems.push(errorMessage(e));
    }
  }

  if (runRouter) input.router = { ...runRouter, source: `stage-2 held-out evaluation of run ${id}` };
  else {
    const info = readRouterInfo(layout.routerDir);
    if (info?.status === 'ok') input.router = { experts: info.experts, accuracy: info.accuracy, confusion: info.confusion, source: `.moa/router/router.json${info.runId ? ` (run ${info.runId})` : ''}` };
    else if (info) problems.push(info.reason ?? `${layout.routerDir}: the router is broken`);
  }

  const manifest = readManifest(layout);
  if (manifest) input.dataset = { manifest, source: '.moa/cache/data/manifest.json' };
  else if (existsSync(manifestPath(layout))) problems.push(`${manifestPath(layout)}: not a dataset manifest (version 1 with a list of domains); run "moa data" again`);
  return input;
}
