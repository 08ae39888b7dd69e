/**
 * Keeps web pages away from the local API. People run the farm on the
 * machine where they browse: without these checks any page could POST a
 * sweep with `mode: 'no-cors'` and a text/plain body, and a DNS-rebinding
 * page could read everything.
 *
 * - Host: when the farm listens on loopback without a token, a request must
 *   name a loopback name, an IP literal or a configured host (421 otherwise),
 *   which defeats DNS rebinding.
 * - Origin: a state-changing request from a browser must come from the
 *   farm's own origin or a configured one (403 otherwise).
 * - Content type: a state-changing /api request with a body must be
 *   application/json (415 otherwise), so no "simple" cross-site request can
 *   carry one; the spec preview also takes YAML text, and remix a PNG
 *   (image/png is not a CORS-safelisted type either: a page must preflight
 *   it, which this server never grants). A wildcard list is PUT as
 *   text/plain: PUT is never a "simple" method, so a page must preflight it
 *   whatever its type, and the Origin check above still applies.
 */
import type { MiddlewareHandler } from 'hono';
import type { Config } from '@nightshift/common';
import { mediaType } from './body-rules.js';

export interface GuardOptions {
  /** Check Host (the API listens on loopback and has no token). */
  checkHost: boolean;
  /** Host names accepted besides loopback names and IP literals (NIGHTSHIFT_ALLOWED_HOSTS). */
  allowedHosts: readonly string[];
  /** Origins allowed besides the farm's own (NIGHTSHIFT_ALLOWED_ORIGINS), e.g. https://farm.example. */
  allowedOrigins: readonly string[];
}

export type GuardConfig = Pick<Config, 'NIGHTSHIFT_HTTP_HOST' | 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_ALLOWED_HOSTS' | 'NIGHTSHIFT_ALLOWED_ORIGINS' | 'NIGHTSHIFT_METRICS_TOKEN' | 'NIGHTSHIFT_SSE_MAX_CLIENTS'>;

/** The guard as the coordinator's settings ask for it. */
export function guardOptions(config: GuardConfig): GuardOptions {
  return {
    checkHost: isLoopbackAddress(config.NIGHTSHIFT_HTTP_HOST) && !config.NIGHTSHIFT_API_TOKEN,
    allowedHosts: config.NIGHTSHIFT_ALLOWED_HOSTS,
    allowedOrigins: config.NIGHTSHIFT_ALLOWED_ORIGINS,
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Routes that read spec text (YAML) as well as JSON. */
const TEXT_ROUTES = new Set(['/api/sweeps/preview']);
/** Routes that read an uploaded image as well as JSON. */
const IMAGE_ROUTES = new Set(['/api/remix']);
/** PUT /api/wildcards/:name takes the list as text/plain lines. */
const isWildcardUpload = (method: string, path: string) => method === 'PUT' && /^\/api\/wildcards\/[^/]+$/.test(path);

/** The host name of a Host header, without port or IPv6 brackets; undefined when malformed. */
export function hostName(header: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9_.-]+))(?::\d{1,5})?$/.exec(header.trim());
  return (m?.[1] ?? m?.[2])?.toLowerCase();
}

const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;

/** Loopback names and IP literals cannot be rebound to an attacker's page by DNS. */
export function isTrustedHost(name: string, allowed: readonly string[]): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || IPV4.test(name) || name.includes(':') || allowed.map((h) => h.toLowerCase()).includes(name);
}

export function isLoopbackAddress(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const hasBody = (headers: Headers) => (Number(headers.get('content-length') ?? 0) > 0 || headers.has('transfer-encoding'));

export function requestGuard(opts: GuardOptions): MiddlewareHandler {
  const origins = new Set(opts.allowedOrigins.map((o) => o.replace(/\/+$/, '').toLowerCase()));
  return async (c, next) => {
    const host = c.req.header('host') ?? '';
    if (opts.checkHost) {
      const name = hostName(host);
      if (!name || !isTrustedHost(name, opts.allowedHosts)) {
        return c.json({ error: `misdirected request: "${host}" is not a name of this farm (add it to NIGHTSHIFT_ALLOWED_HOSTS)` }, 421);
      }
    }
    if (SAFE_METHODS.has(c.req.method)) return next();
    const origin = c.req.header('origin');
    if (origin !== undefined) {
      const own = `${new URL(c.req.url).protocol}//${host}`.toLowerCase();
      if (origin.toLowerCase() !== own && !origins.has(origin.toLowerCase())) {
        return c.json({ error: `cross-origin request refused: origin ${origin} may not change this farm (add it to NIGHTSHIFT_ALLOWED_ORIGINS)` }, 403);
      }
    }
    const declared = c.req.header('content-type');
    if (c.req.path.startsWith('/api/') && (declared !== undefined || hasBody(c.req.raw.headers))) {
      const type = mediaType(declared);
      const image = IMAGE_ROUTES.has(c.req.path);
      const ok = type === 'application/json' || (TEXT_ROUTES.has(c.req.path) && ['text/plain', 'text/yaml', 'application/yaml'].includes(type)) || (image && type === 'image/png') || (isWildcardUpload(c.req.method, c.req.path) && type === 'text/plain');
      if (!ok) return c.json({ error: `unsupported content type "${type || 'none'}": send application/json${image ? ' or image/png' : ''}` }, 415);
    }
    return next();
  };
}
