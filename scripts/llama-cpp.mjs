// Installs llama.cpp for the GGUF tests and the llama.cpp bench, once per checkout, into
// bench/llama-cpp/ (its own package.json and lockfile, never the root package or the .vsix):
// node-llama-cpp with only its prebuilt CPU binary package. Optional packages (the ~700 MB of GPU
// binaries) are omitted and install scripts never run, so nothing is downloaded or compiled later.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'bench', 'llama-cpp');
if (!existsSync(join(dir, 'node_modules', '@node-llama-cpp', 'linux-x64', 'package.json')) || !existsSync(join(dir, 'node_modules', 'node-llama-cpp', 'package.json'))) {
  const args = ['ci', '--prefix', dir, '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund'];
  console.log(`$ npm ${args.join(' ')}`);
  const r = spawnSync('npm', args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\nllama.cpp: could not install node-llama-cpp into ${dir}; run: npm ${args.join(' ')}\n`);
    process.exit(1);
  }
}
console.log('llama.cpp (node-llama-cpp, CPU) ready');
