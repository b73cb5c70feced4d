import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { MoaError } from '../core/util/errors';

/** One demo domain: a folder of the demo workspace and the files copied into it, in a fixed order. */
export interface DemoSource {
  /** The domain `moa init` will suggest for these files. */
  domain: string;
  folder: string;
  describe: string;
  files: string[];
}

const DEMO_FILES_PER_DOMAIN = 30;
const MIN_BYTES = 500;
const MAX_BYTES = 200_000;

const listDir = (dir: string, re: RegExp) => (existsSync(dir) ? readdirSync(dir).filter((n) => re.test(n)).sort().map((n) => join(dir, n)) : []);

/**
 * Text every machine has after `npm ci` (and with Python installed), chosen by fixed lists and
 * sorted names so two runs train on the same files: four clearly different kinds of text.
 */
export function demoSources(productRoot: string, python: string): DemoSource[] {
  const nm = join(productRoot, 'node_modules');
  const readmes = existsSync(nm) ? readdirSync(nm).filter((n) => !n.startsWith('.') && !n.startsWith('@')).sort().map((n) => join(nm, n, 'README.md')) : [];
  // Hand-written CommonJS/ESM sources (not bundles, not minified) of packages the lockfile pins.
  const jsDirs = ['picomatch/lib', 'semver/classes', 'semver/functions', 'semver/ranges', 'semver/internal', 'commander/lib', 'chokidar', 'readdirp', 'ignore'];
  const js = jsDirs.flatMap((d) => listDir(join(nm, d), /^[^.].*(?<!\.min)\.(js|cjs|mjs)$/));
  const probe = spawnSync(python, ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' });
  const stdlib = probe.status === 0 ? probe.stdout.trim() : '';
  const py = stdlib ? ['json', 'email', 'http', 'logging', 'urllib', 'importlib'].flatMap((pkg) => listDir(join(stdlib, pkg), /\.py$/)) : [];
  return [
    { domain: 'python', folder: 'pysrc', describe: "modules of Python's standard library", files: py },
    { domain: 'typescript', folder: 'types', describe: "TypeScript's lib.es20xx declaration files", files: listDir(join(nm, 'typescript', 'lib'), /^lib\.es20\d\d\..*\.d\.ts$/) },
    { domain: 'javascript', folder: 'jssrc', describe: 'JavaScript sources of npm packages (picomatch, semver, commander, …)', files: js },
    { domain: 'markdown', folder: 'docs', describe: 'README files of npm packages', files: readmes },
  ];
}

export interface DemoDomain {
  domain: string;
  folder: string;
  describe: string;
  copied: string[];
}

/** Copies up to `perDomain` files of each source into `ws`; every source must give at least two. */
export function assembleDemoWorkspace(ws: string, sources: DemoSource[], perDomain = DEMO_FILES_PER_DOMAIN): DemoDomain[] {
  const out: DemoDomain[] = [];
  for (const s of sources) {
    const copied: string[] = [];
    mkdirSync(join(ws, s.folder), { recursive: true });
    for (const f of s.files) {
      if (copied.length >= perDomain) break;
      const size = existsSync(f) ? statSync(f).size : 0;
      if (size < MIN_BYTES || size > MAX_BYTES) continue;
      // The index keeps copies from different packages apart (many are called index.js).
      const dest = join(ws, s.folder, `${String(copied.length).padStart(2, '0')}-${basename(f)}`);
      copyFileSync(f, dest);
      copied.push(dest);
    }
    if (copied.length < 2) {
      throw new MoaError(`demo: found ${copied.length} file(s) for the ${s.domain} domain (${s.describe})`, s.domain === 'python' ? 'Install Python 3.10+ (python3) and run "npm run demo" again.' : 'Run "npm ci" in the MoA Studio checkout first.');
    }
    out.push({ domain: s.domain, folder: s.folder, describe: s.describe, copied });
  }
  return out;
}
