// Creates the git-ignored virtual environment .venv and installs trainer/requirements.txt
// (with --test, also requirements-test.txt) the ecosystem's way: python -m venv + pip.
// Reinstalls only when the requirement files change. Stops with an exact instruction when
// Python itself is missing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const withTests = process.argv.includes('--test');
const venv = join(root, '.venv');
const py = process.platform === 'win32' ? join(venv, 'Scripts', 'python.exe') : join(venv, 'bin', 'python');
const reqs = [join(root, 'trainer', 'requirements.txt'), ...(withTests ? [join(root, 'trainer', 'requirements-test.txt')] : [])];

function run(cmd, args) {
  return spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
}

function fail(message) {
  console.error(`\n${message}\n`);
  process.exit(1);
}

const hash = createHash('sha256');
for (const r of reqs) hash.update(readFileSync(r));
const stamp = join(venv, `.moa-requirements${withTests ? '-test' : ''}.sha256`);
const want = hash.digest('hex');
if (existsSync(py) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) process.exit(0);

if (!existsSync(py)) {
  const probe = spawnSync('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    fail('MoA Studio needs Python 3.10 or newer for its trainer, and python3 was not found.\n' +
      'On Debian/Ubuntu install it with:  sudo apt-get install -y python3 python3-venv\n' +
      'then run the command again.');
  }
  const [major, minor] = probe.stdout.trim().split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 10)) {
    fail(`MoA Studio needs Python 3.10 or newer; python3 is ${probe.stdout.trim()}.\n` +
      'Install a newer Python (for example: sudo apt-get install -y python3.11 python3.11-venv) and make it python3.');
  }
  console.log(`creating ${venv} with python3 ${probe.stdout.trim()}`);
  if (run('python3', ['-m', 'venv', venv]).status !== 0) {
    fail('python3 -m venv failed. On Debian/Ubuntu:  sudo apt-get install -y python3-venv   then run the command again.');
  }
}
// --retries 0: where a package index is unreachable (as on these build machines), fail over to
// the configured local stores at once instead of retrying for minutes.
const args = ['-m', 'pip', 'install', '--retries', '0', '--disable-pip-version-check', '-q'];
for (const r of reqs) args.push('-r', r);
console.log(`installing ${reqs.map((r) => r.slice(root.length + 1)).join(' + ')} into .venv`);
if (run(py, args).status !== 0) fail('pip could not install the trainer requirements (see above).');
writeFileSync(stamp, want);
