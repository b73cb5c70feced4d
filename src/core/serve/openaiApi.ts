import type { RouteDecision } from '../routing/resolve';

/**
 * The OpenAI-style completions API as `moa serve` speaks it (pure: parsing requests, shaping
 * responses). Field names, defaults and error bodies follow OpenAI's legacy completions endpoint,
 * which editors (Continue, Tabby's OpenAI backend) and the openai clients send; what we cannot
 * honour (n > 1, logprobs, echo, token-id prompts) is refused with a 400 naming the field.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export function errorBody(e: ApiError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  const type = e.status === 401 ? 'authentication_error' : e.status === 429 ? 'rate_limit_error' : e.status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message: e.message, type, param: e.param, code: e.code } };
}

export interface CompletionRequest {
  model: string;
  prompt: string;
  suffix: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  stop: string[];
  stream: boolean;
  seed?: number;
  /** Workspace-relative path the text comes from: the label router's input. */
  file?: string;
  /** A VS Code language id (python, typescript…): the label router's input when no file is given. */
  language?: string;
}

/** The most tokens one request may ask for: past it a client is more likely wrong than patient. */
export const MAX_TOKENS_LIMIT = 4096;
const MAX_STOPS = 64;

function num(body: Record<string, unknown>, key: string, fallback: number, lo: number, hi: number): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new ApiError(400, `${key} must be a number in [${lo}, ${hi}]`, key);
  return v;
}

function str(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ApiError(400, `${key} must be a string`, key);
  return v;
}

/** A POST /v1/completions body as a request we can serve; `models` are the ids /v1/models lists. */
export function parseCompletionRequest(body: unknown, models: readonly string[]): CompletionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const model = str(b, 'model');
  if (!model) throw new ApiError(400, 'model is required (see GET /v1/models)', 'model');
  if (!models.includes(model)) throw new ApiError(404, `the model "${model}" does not exist here; models: ${models.join(', ')}`, 'model', 'model_not_found');
  let prompt = b['prompt'];
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string') throw new ApiError(400, 'prompt must be a string (token-id and batched prompts are not supported)', 'prompt');
  for (const key of ['n', 'best_of']) {
    if (b[key] !== undefined && b[key] !== null && b[key] !== 1) throw new ApiError(400, 'n and best_of must be 1 (one completion per request)', key);
  }
  if (b['logprobs'] !== undefined && b['logprobs'] !== null) throw new ApiError(400, 'logprobs is not supported', 'logprobs');
  if (b['echo'] === true) throw new ApiError(400, 'echo is not supported', 'echo');
  const rawStop = b['stop'];
  const stop = rawStop === undefined || rawStop === null ? [] : typeof rawStop === 'string' ? [rawStop] : rawStop;
  // OpenAI allows 4; Continue sends every stop word it has to any other host, and llama.cpp's
  // server takes them all, so the bound here only guards against abuse.
  if (!Array.isArray(stop) || stop.length > MAX_STOPS || !stop.every((s) => typeof s === 'string' && s.length <= 256)) {
    throw new ApiError(400, `stop must be a string or up to ${MAX_STOPS} strings of at most 256 characters`, 'stop');
  }
  if (b['stream'] !== undefined && typeof b['stream'] !== 'boolean') throw new ApiError(400, 'stream must be a boolean', 'stream');
  const seed = b['seed'] === undefined || b['seed'] === null ? undefined : num(b, 'seed', 0, 0, 2 ** 32 - 1);
  if (seed !== undefined && !Number.isInteger(seed)) throw new ApiError(400, 'seed must be an integer', 'seed');
  const maxTokens = num(b, 'max_tokens', 16, 1, MAX_TOKENS_LIMIT);
  if (!Number.isInteger(maxTokens)) throw new ApiError(400, 'max_tokens must be an integer', 'max_tokens');
  const file = str(b, 'file');
  if (file !== undefined && (file.startsWith('/') || /^[a-zA-Z]:/.test(file) || file.split(/[\\/]/).includes('..'))) {
    throw new ApiError(400, 'file must be a path inside the workspace, relative to it', 'file');
  }
  return {
    model,
    prompt,
    suffix: str(b, 'suffix') ?? '',
    maxTokens,
    temperature: num(b, 'temperature', 1, 0, 2),
    topP: num(b, 'top_p', 1, 0, 1),
    // An empty stop string would end every completion before its first character.
    stop: (stop as string[]).filter((s) => s !== ''),
    stream: b['stream'] === true,
    ...(seed !== undefined ? { seed } : {}),
    ...(file !== undefined ? { file } : {}),
    ...(str(b, 'language') !== undefined ? { language: str(b, 'language') } : {}),
  };
}

/** OpenAI's finish_reason for how generation ended. */
export function finishReason(stopReason: string): 'stop' | 'length' {
  return stopReason === 'max-tokens' ? 'length' : 'stop';
}

/** Who served: the extra field every response carries (OpenAI clients ignore unknown fields). */
export function servedBy(route: RouteDecision): { experts: { name: string; weight: number }[]; mode: string; reason: string } {
  return { experts: route.experts, mode: route.mode, reason: route.reason };
}

export function completionBody(id: string, created: number, model: string, text: string, finish: string | null, usage?: { prompt: number; completion: number }, moa?: unknown): Record<string, unknown> {
  return {
    id,
    object: 'text_completion',
    created,
    model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
    ...(usage ? { usage: { prompt_tokens: usage.prompt, completion_tokens: usage.completion, total_tokens: usage.prompt + usage.completion } } : {}),
    ...(moa !== undefined ? { moa } : {}),
  };
}

/**
 * The part of `text` safe to stream: a stop string may still complete at its end, and a byte-level
 * model's unfinished UTF-8 character decodes as U+FFFD until its last byte arrives.
 */
export function streamable(text: string, stops: readonly string[]): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, end); k > 0; k--) {
      if (text.slice(end - k, end) === s.slice(0, k)) {
        end -= k;
        break;
      }
    }
  }
  return text.slice(0, end);
}
