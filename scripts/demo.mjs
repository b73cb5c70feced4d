// `npm run demo`: prepares the Python environment and the bundle, then runs `moa demo`, which
// assembles a demo workspace in a fresh temporary folder from text on this machine (Python's
// standard library; TypeScript declarations, JavaScript sources and READMEs from node_modules),
// trains the experts, the router and the mixed baseline, prints the eval table, routes a sample of
// each domain, completes one prompt under each expert and writes the HTML report. It never
// touches your files. MOA_DEMO_STEPS overrides the training steps; extra arguments go to `moa demo`.
import { spawnSync } from 'node:child_process';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    console.error(`\ndemo: "${[basename(cmd), ...args].join(' ')}" failed`);
    process.exit(r.status ?? 1);
  }
}

run(process.execPath, ['scripts/python-env.mjs']);
run(process.execPath, ['scripts/build.mjs', '--production']);
run(process.execPath, [join(root, 'dist', 'cli.js'), 'demo', ...process.argv.slice(2)]);
