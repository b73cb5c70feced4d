import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { CompleteOptions, Completion } from '../inference/service';
import type { MoaConfig } from '../config/schema';
import { errorMessage } from '../util/errors';
import { ApiError, completionBody, errorBody, finishReason, parseCompletionRequest, servedBy, streamable, type CompletionRequest } from './openaiApi';

/** What the server needs from the workspace: the models it offers and a way to complete. */
export interface ServeBackend {
  /** Attached experts, read per request (training or an import may add one while it runs). */
  experts(): string[];
  complete(relPath: string, prompt: string, opts: CompleteOptions, suffix: string): Promise<Completion>;
  /** The base model has a chat template (none of ours has one yet: chat is refused). */
  chat: boolean;
}

export interface ServeOptions {
  host: string;
  port: number;
  apiKey?: string;
  /** Largest request body accepted (413 past it). */
  maxBodyBytes: number;
  /** One request's generation is cancelled past this (504, or the stream ends). */
  timeoutMs: number;
  /** Requests waiting behind the one running; one more is answered 429. */
  maxQueue: number;
  promptTokens: number;
  onLog?: (line: string) => void;
}

export const SERVE_DEFAULTS = { host: '127.0.0.1', port: 8731, maxBodyBytes: 1 << 20, timeoutMs: 120_000, maxQueue: 16, promptTokens: 1024 } as const;

/**
 * The config a workspace is served with. Label routing needs a file or a language, which a bare
 * prompt lacks, so a workspace routing by label is served in `auto` mode: by a request's
 * `file`/`language` when it has one, else by the learned router reading the prompt.
 */
export function servedConfig(config: MoaConfig): MoaConfig {
  return config.routing.mode === 'label' ? { ...config, routing: { ...config.routing, mode: 'auto' } } : config;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface RunningServer {
  url: string;
  port: number;
  /** Stops accepting, lets the running and queued requests finish, then resolves. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return reject(new ApiError(413, `the request body is ${declared} bytes; the limit is ${limit}`));
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new ApiError(413, `the request body is over the ${limit}-byte limit`));
        req.destroy();
      } else parts.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function authorized(req: IncomingMessage, key: string | undefined): boolean {
  if (!key) return true;
  const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
  const want = Buffer.from(key);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * `moa serve`: an OpenAI-compatible HTTP server over a workspace's experts. One generation runs at
 * a time (one ONNX session); others wait in a bounded queue. A client that disconnects cancels its
 * request, queued or running.
 */
export async function startServer(backend: ServeBackend, opts: ServeOptions): Promise<RunningServer> {
  if (!isLoopback(opts.host) && !opts.apiKey) throw new ApiError(400, `listening on ${opts.host} makes the server reachable from other machines; give --api-key (clients send it as a bearer token)`);
  let chain: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  const log = opts.onLog ?? (() => undefined);

  const models = () => ['moa', 'base', ...backend.experts()];

  async function completions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req, opts.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      throw new ApiError(400, `the request body is not JSON (${errorMessage(e)})`);
    }
    const r = parseCompletionRequest(body, models());
    if (waiting >= opts.maxQueue) throw new ApiError(429, `${waiting} requests are waiting; try again shortly`);
    const abort = new AbortController();
    const onClose = () => abort.abort();
    res.on('close', onClose);
    waiting++;
    const turn = chain.then(() => serve(r, res, abort.signal));
    chain = turn.catch(() => undefined);
    try {
      await turn;
    } finally {
      res.off('close', onClose);
    }
  }

  async function serve(r: CompletionRequest, res: ServerResponse, signal: AbortSignal): Promise<void> {
    waiting--;
    if (signal.aborted) return; // the client left while queued
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    let sent = '';
    if (r.stream) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const event = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    const options: CompleteOptions = {
      maxNewTokens: r.maxTokens,
      temperature: r.temperature,
      topP: r.topP,
      seed: r.seed ?? 0,
      promptTokens: opts.promptTokens,
      stop: 'none',
      stopStrings: r.stop,
      signal: both,
      ...(r.language ? { languageId: r.language } : {}),
      ...(r.model === 'base' ? { base: true } : r.model !== 'moa' ? { expert: r.model } : {}),
      ...(r.stream ? {
        onText: (text: string) => {
          const ready = streamable(text, r.stop);
          if (ready.length > sent.length && ready.startsWith(sent)) {
            event(completionBody(id, created, r.model, ready.slice(sent.length), null));
            sent = ready;
          }
        },
      } : {}),
    };
    const t0 = performance.now();
    const done = await backend.complete(r.file ?? '', r.prompt, options, r.suffix);
    const finish = timeout.aborted ? 'length' : finishReason(done.stopReason);
    const moa = { ...servedBy(done.route), ...(timeout.aborted ? { timedOut: true } : {}) };
    const usage = { prompt: done.promptTokenIds.length, completion: done.tokens };
    log(`${r.model} ${usage.prompt}+${usage.completion} tokens, ${Math.round(performance.now() - t0)} ms, ${done.route.experts.map((e) => e.name).join('+') || 'base'}${signal.aborted ? ' (client left)' : ''}`);
    if (signal.aborted) return void res.end();
    if (r.stream) {
      const rest = done.text.startsWith(sent) ? done.text.slice(sent.length) : '';
      event(completionBody(id, created, r.model, rest, finish, usage, moa));
      res.end('data: [DONE]\n\n');
    } else if (timeout.aborted) {
      send(res, 504, errorBody(new ApiError(504, `generation ran past ${opts.timeoutMs} ms and was cancelled`)));
    } else {
      send(res, 200, completionBody(id, created, r.model, done.text, finish, usage, moa));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (!authorized(req, opts.apiKey)) throw new ApiError(401, 'a valid API key is required (Authorization: Bearer …)');
    if (path === '/v1/models' || path === '/models') {
      if (req.method !== 'GET') throw new ApiError(405, `${req.method} ${path}: use GET`);
      const created = Math.floor(Date.now() / 1000);
      return send(res, 200, { object: 'list', data: models().map((id) => ({ id, object: 'model', created, owned_by: id === 'moa' ? 'moa-studio (routed)' : 'moa-studio' })) });
    }
    if (path === '/v1/completions' || path === '/completions') {
      if (req.method !== 'POST') throw new ApiError(405, `${req.method} ${path}: use POST`);
      return completions(req, res);
    }
    if ((path === '/v1/chat/completions' || path === '/chat/completions') && !backend.chat) throw new ApiError(400, 'this base model has no chat template, so it cannot take chat messages; use POST /v1/completions with a prompt', 'messages');
    throw new ApiError(404, `no route ${req.method} ${path}`);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, errorMessage(e));
      if (err.status >= 500) log(`error: ${err.message}`);
      send(res, err.status, errorBody(err));
    });
  });
  server.requestTimeout = opts.timeoutMs + 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      void chain.then(() => server.closeAllConnections());
    }),
  };
}
