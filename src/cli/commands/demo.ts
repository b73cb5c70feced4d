import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setRoutingMode } from '../../core/config/edit';
import { workspaceLayout } from '../../core/paths';
import { EXIT, UsageError, intOption, productRoot, pythonOf } from '../args';
import type { Values } from '../args';
import { assembleDemoWorkspace, demoSources, type DemoDomain } from '../demoWorkspace';
import { formatSeconds } from '../progress';
import { cmdComplete } from './complete';
import { cmdData } from './data';
import { cmdEval } from './eval';
import { cmdExperts } from './experts';
import { cmdInit } from './init';
import { cmdReport } from './report';
import { cmdRoute } from './route';
import { cmdTrain } from './train';

/** Stage-1 and mixed-baseline steps; sized so the whole demo stays well under 10 minutes on 2 CPU cores. */
const DEMO_STEPS = 200;
const DEMO_ROUTER_STEPS = 100;

/** A new folder, or an empty one: the demo never writes among a user's files. */
function demoFolder(asked: string | undefined): string {
  if (asked === undefined) return mkdtempSync(join(tmpdir(), 'moa-demo-'));
  const dir = resolve(asked);
  if (existsSync(dir) && readdirSync(dir).length) throw new UsageError(`${dir} is not empty: the demo builds its workspace in a new or empty folder`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Where the comparison prompt ends: at the start of the first top-level `def`/`class` past the
 * opening docstring, where each expert is free to start a statement of its own kind; else line 12.
 */
function comparisonCursor(text: string): { line: number; col: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l, n) => n >= 8 && /^(def|class) \w/.test(l));
  return { line: i >= 0 ? i + 1 : Math.min(lines.length, 12), col: 1 };
}

/** A line two below an opening ```js/```ts/```py fence in one of the demo's READMEs (the first such). */
function fencedCodeLine(domains: DemoDomain[]): { file: string; line: number; tag: string } | undefined {
  for (const file of domains.find((d) => d.domain === 'markdown')?.copied ?? []) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i + 3 < lines.length; i++) {
      const m = /^```(js|javascript|ts|typescript|py|python)\s*$/.exec(lines[i]!);
      if (m && !lines[i + 1]!.startsWith('```') && !lines[i + 2]!.startsWith('```')) return { file, line: i + 3, tag: m[1]! };
    }
  }
  return undefined;
}

/** Held-out positions per domain for the completion table: enough to see the columns apart, in about half a minute. */
const DEMO_POSITIONS = 16;

/** Sampled with one fixed seed: the same random draws under every expert, so only the expert differs. */
const SAMPLING = { temperature: '0.7', seed: '1', maxTokens: '80' };

/**
 * `moa demo` (and `npm run demo`): the whole product on the embedded base model, on a workspace
 * assembled from text already on the machine: datasets, the experts, the router and the mixed
 * baseline, the eval table, routing, one prompt under different experts, and the HTML report.
 */
export async function cmdDemo(values: Values): Promise<number> {
  const envSteps = process.env['MOA_DEMO_STEPS'];
  if (values.steps === undefined && envSteps !== undefined && !/^[1-9]\d*$/.test(envSteps)) throw new UsageError(`MOA_DEMO_STEPS must be an integer ≥ 1, got "${envSteps}"`);
  const steps = intOption({ steps: values.steps ?? envSteps }, 'steps', DEMO_STEPS, 1)!;
  const routerSteps = intOption(values, 'router-steps', DEMO_ROUTER_STEPS, 1)!;
  const python = pythonOf(values);
  const ws = demoFolder(values.workspace);
  const started = Date.now();
  const domains = assembleDemoWorkspace(ws, demoSources(productRoot, python));
  const out = (s: string) => process.stdout.write(s + '\n');
  const rel = (p: string) => relative(ws, p);
  out(`demo workspace: ${ws}`);
  for (const d of domains) out(`  ${d.folder}/  ${String(d.copied.length).padStart(2)} files: ${d.describe}`);

  const common: Values = { workspace: ws, ...(values.python ? { python: values.python } : {}) };
  const moa = async (shown: string, run: () => Promise<number>): Promise<void> => {
    out(`\n$ moa ${shown}`);
    const code = await run();
    if (code !== EXIT.ok) throw new DemoStepFailed(shown, code);
  };
  try {
    await moa('init', () => cmdInit(common));
    await moa('data', () => cmdData(common));
    const stages = 'experts,router,mixed';
    await moa(`train --steps ${steps} --router-steps ${routerSteps} --stages ${stages}`, () =>
      cmdTrain({ ...common, steps: String(steps), 'router-steps': String(routerSteps), stages }));
    await moa('experts list', () => cmdExperts(common, ['list']));
    await moa(`eval --completions --positions ${DEMO_POSITIONS}`, () => cmdEval({ ...common, completions: true, positions: String(DEMO_POSITIONS) }));

    // The learned router, not the file's label, decides each sample's expert from its text.
    setRoutingMode(workspaceLayout(ws).configFile, 'learned');
    out('\n(routing.mode set to "learned" in .moa/moa.json: the trained router picks the expert from the text)');
    for (const d of domains) {
      const sample = d.copied[0]!;
      await moa(`route ${rel(sample)}    # a ${d.domain} file`, () => cmdRoute(common, [sample]));
    }

    // A README is not one domain: inside a fenced code block the route follows the block.
    const fenced = fencedCodeLine(domains);
    if (fenced) {
      setRoutingMode(workspaceLayout(ws).configFile, 'auto');
      out(`\n(routing.mode set to "auto": labels by file, except inside a fenced block, which goes to its language's expert)`);
      await moa(`route ${rel(fenced.file)} --line ${fenced.line}    # inside a \`\`\`${fenced.tag} block of a README`, () => cmdRoute({ ...common, line: String(fenced.line) }, [fenced.file]));
    }

    await compareExperts(domains, rel, moa, common);

    await moa('report', () => cmdReport(common));
  } catch (e) {
    if (e instanceof DemoStepFailed) {
      process.stderr.write(`\ndemo: "moa ${e.step}" failed; the workspace is kept at ${ws}\n`);
      return e.code;
    }
    throw e;
  }
  out(`\ndemo finished in ${formatSeconds((Date.now() - started) / 1000)}; workspace kept at ${ws}`);
  out(`open the report: ${join(ws, '.moa', 'report.html')}`);
  return EXIT.ok;
}

class DemoStepFailed extends Error {
  constructor(
    readonly step: string,
    readonly code: number,
  ) {
    super(`moa ${step} failed`);
  }
}

/** The same prompt (code from the python sample) completed by each expert in turn. */
async function compareExperts(domains: DemoDomain[], rel: (p: string) => string, moa: (shown: string, run: () => Promise<number>) => Promise<void>, common: Values): Promise<void> {
  const file = (domains.find((d) => d.domain === 'python') ?? domains[0]!).copied[0]!;
  const text = readFileSync(file, 'utf8');
  const { line, col } = comparisonCursor(text);
  const lines = text.split('\n');
  process.stdout.write(`\nOne prompt, ${domains.length} experts: the text of ${rel(file)} before line ${line}, which ends with\n`);
  process.stdout.write(lines.slice(Math.max(0, line - 5), line - 1).map((l) => `  | ${l}`).join('\n') + '\n');
  const { temperature, seed, maxTokens } = SAMPLING;
  for (const d of domains) {
    await moa(`complete ${rel(file)} --line ${line} --col ${col} --max-tokens ${maxTokens} --temperature ${temperature} --seed ${seed} --expert ${d.domain}`, () =>
      cmdComplete({ ...common, line: String(line), col: String(col), 'max-tokens': maxTokens, temperature, seed, expert: d.domain }, [file]));
  }
}
