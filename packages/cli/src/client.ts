/**
 * The coordinator's HTTP API as the CLI sees it: JSON calls with the bearer
 * token, an SSE reader for live progress, and errors that say what to check.
 */

/** Exit codes, documented in `nightshift --help`. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, auth: 4 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

/** A non-2xx answer from the API, with its `{error, details}` body. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    message: string,
    readonly details: { path: string; message: string }[] = [],
  ) {
    super(message, status === 400 ? EXIT.usage : EXIT.failed);
  }
}

const CAUSES: Record<string, string> = {
  ECONNREFUSED: 'connection refused: nothing listens there',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
};

export function unreachableError(base: string, err: unknown): CliError {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? '';
  const why = e.name === 'TimeoutError' ? 'no answer in time' : (CAUSES[code] ?? (code || e.cause?.message || e.message || String(err)));
  return new CliError(
    `cannot reach the coordinator at ${base} (${why}).\n` +
      `  Check that the coordinator is running (\`nightshift up\` starts a local farm) and that --url or NIGHTSHIFT_URL\n` +
      `  points at its HTTP address (default http://127.0.0.1:8080; a remote coordinator must set NIGHTSHIFT_HTTP_HOST to listen beyond loopback).`,
    EXIT.unreachable,
  );
}

export interface SseEvent {
  event: string;
  data: unknown;
}

export class Client {
  readonly base: string;

  constructor(
    url: string,
    private readonly token?: string,
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new CliError(`--url ${JSON.stringify(url)} is not a URL; expected something like http://127.0.0.1:8080`, EXIT.usage);
    }
    if (!/^https?:$/.test(parsed.protocol)) throw new CliError(`--url must be http:// or https://, got ${url}`, EXIT.usage);
    this.base = parsed.origin + parsed.pathname.replace(/\/+$/, '');
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.base}${path}`, init);
    } catch (err) {
      throw unreachableError(this.base, err);
    }
  }

  private refused(): CliError {
    return new CliError(
      `the coordinator at ${this.base} refused the request (HTTP 401): ${this.token ? 'the API token was not accepted' : 'it needs an API token'}.\n` +
        '  Pass --token or set NIGHTSHIFT_API_TOKEN to the coordinator\'s token, or NIGHTSHIFT_API_KEY to your key (`nightshift keys add`); a revoked key is refused.',
      EXIT.auth,
    );
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const res = await this.fetch(path, {
      method,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return this.answer<T>(res, method, path);
  }

  /** POSTs raw bytes (an image upload) with their content type; the answer is read as request() reads it. */
  async postBytes<T>(path: string, bytes: Uint8Array, contentType: string, timeoutMs = 60_000): Promise<T> {
    return this.sendBytes<T>('POST', path, bytes, contentType, timeoutMs);
  }

  /** Raw bytes with their content type (an image upload, a wildcard list PUT); the answer is read as request() reads it. */
  async sendBytes<T>(method: 'POST' | 'PUT', path: string, bytes: Uint8Array, contentType: string, timeoutMs = 60_000): Promise<T> {
    const res = await this.fetch(path, { method, headers: this.headers({ 'content-type': contentType }), body: bytes, signal: AbortSignal.timeout(timeoutMs) });
    return this.answer<T>(res, method, path);
  }

  private async answer<T>(res: Response, method: string, path: string): Promise<T> {
    if (res.status === 401) throw this.refused();
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const b = (data ?? {}) as { error?: string; details?: { path: string; message: string }[] };
      if (res.status === 404 && !b.error) {
        throw new ApiError(404, `${method} ${path.split('?')[0]} is not available on the coordinator at ${this.base} (404); it may be older than this CLI.`);
      }
      throw new ApiError(res.status, b.error ?? `${method} ${path} failed with HTTP ${res.status}`, Array.isArray(b.details) ? b.details : []);
    }
    return data as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {});
  }

  /** Reads Server-Sent Events until `signal` aborts or the server closes the stream. */
  async events(path: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await this.fetch(path, { headers: this.headers({ accept: 'text/event-stream' }), signal });
    if (res.status === 401) throw this.refused();
    if (!res.ok || !res.body) throw new ApiError(res.status, `GET ${path} failed with HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const e = parseSseFrame(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (e) onEvent(e);
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}

export function parseSseFrame(frame: string): SseEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return undefined;
  try {
    return { event, data: JSON.parse(data.join('\n')) as unknown };
  } catch {
    return { event, data: data.join('\n') };
  }
}
