// Bundles the extension, the CLI, each webview app and the tests with esbuild.
// onnxruntime-node stays external (its .node binary cannot be bundled) and ships in node_modules;
// vscode is provided by the editor.
import * as esbuild from 'esbuild';
import { readFileSync, readdirSync, statSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const production = process.argv.includes('--production');
const withTests = !production;

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'onnxruntime-node', 'playwright-core'],
  logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });
const jobs = [
  esbuild.build({ ...node, entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js' }),
  // The completion worker (onnxruntime-node off the extension host's thread): its own bundle.
  esbuild.build({ ...node, entryPoints: ['src/core/inference/completionWorker.ts'], outfile: 'dist/completionWorker.js' }),
  // The dataset builder (a child process, so a large workspace never blocks the host): its own bundle.
  esbuild.build({ ...node, entryPoints: ['src/core/data/buildChild.ts'], outfile: 'dist/dataBuild.js' }),
  // GGUF export for the editor (a base's weights take seconds): a worker thread's bundle.
  esbuild.build({ ...node, entryPoints: ['src/core/gguf/exportWorker.ts'], outfile: 'dist/ggufExport.js' }),
  esbuild.build({
    ...node,
    entryPoints: ['src/cli/main.ts'],
    outfile: 'dist/cli.js',
    banner: { js: '#!/usr/bin/env node' },
  }),
  esbuild.build({
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: false,
    minify: production,
    entryPoints: { dashboard: 'webview/dashboard/main.ts', inspector: 'webview/inspector/main.ts' },
    outdir: 'dist/webview',
    logLevel: 'warning',
  }),
];
if (withTests) {
  rmSync('out', { recursive: true, force: true });
  jobs.push(
    esbuild.build({ ...node, entryPoints: listTests('test'), outbase: 'test', outdir: 'out/test' }),
  );
}
await Promise.all(jobs);

// The shipped JSON Schema of .moa/moa.json, written from its one declaration
// (src/core/config/table.ts); committed because package.json's jsonValidation and the trainer's
// tests read it without a build.
const gen = await esbuild.build({ ...node, sourcemap: false, minify: false, entryPoints: ['src/core/config/jsonSchema.ts'], write: false, outfile: 'schema.cjs' });
const mod = { exports: {} };
new Function('module', 'exports', gen.outputFiles[0].text)(mod, mod.exports);
const schema = `${JSON.stringify(mod.exports.configJsonSchema(), null, 2)}\n`;
if (readFileSync('schemas/moa.schema.json', 'utf8') !== schema) writeFileSync('schemas/moa.schema.json', schema);
