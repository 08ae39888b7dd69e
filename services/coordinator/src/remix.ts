/**
 * POST /api/remix (docs/design.md "HTTP API: coordinator"): the sweep spec
 * that renders an image again, read from its PNG metadata (@nightshift/common
 * remixPng). The image comes as the raw body (`content-type: image/png`, up
 * to 20 MB) or by bucket key as `{"key": "images/….png"}`. Answers
 * `{spec, source, notes}`, plus `issues` (field paths, as a 400 of
 * POST /api/sweeps would list them) when the image's settings fall outside
 * what a Nightshift sweep allows, so the form can mark them for editing.
 */
import { Hono, type Context } from 'hono';
import { mediaType, tooLarge } from './body-rules.js';
import { assertSafeKey, keyPrefix, RemixError, remixPng, type Remix, type Storage } from '@nightshift/common';
import { parseSpec, SpecError, type SpecIssue } from '@nightshift/sweep';

export const REMIX_PATH = '/api/remix';
/** An upload's limit; the coordinator's other routes take at most 1 MiB. */
export const REMIX_MAX_BYTES = 20 * 1024 * 1024;
/** A `{"key"}` body is a few hundred bytes. */
const KEY_BODY_MAX_BYTES = 4 * 1024;

export interface RemixDeps {
  storage: Pick<Storage, 'get'>;
  /** Whether this request may read the image `key` (a user: their own sweeps' images only); all when absent. */
  mayRead?: (c: Context, key: string) => boolean | Promise<boolean>;
}

export interface RemixAnswer extends Remix {
  issues?: SpecIssue[];
}

const typeOf = (c: Context) => mediaType(c.req.header('content-type'));

/** Reads the image named by a `{"key"}` body; a Response when that fails. */
async function imageByKey(c: Context, { storage, mayRead }: RemixDeps): Promise<Buffer | Response> {
  const body = (await c.req.json().catch(() => undefined)) as { key?: unknown } | undefined;
  if (typeof body?.key !== 'string') return c.json({ error: 'send the image as image/png, or JSON {"key": "images/….png"}', details: [{ path: 'key', message: 'must be a string' }] }, 400);
  let key: string;
  try {
    key = assertSafeKey(body.key);
    if (!['images', 'upscaled'].includes(keyPrefix(key) ?? '')) throw new Error('not an image');
  } catch {
    return c.json({ error: `invalid image key ${JSON.stringify(body.key)}: expected images/….png or upscaled/….png`, details: [{ path: 'key', message: 'not an image key' }] }, 400);
  }
  // Another user's image is as absent as a missing one.
  if (mayRead && !(await mayRead(c, key))) return c.json({ error: `no image ${key} in the bucket` }, 404);
  try {
    return await storage.get(key);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'NoSuchKey' || code === 'NotFound') return c.json({ error: `no image ${key} in the bucket` }, 404);
    return c.json({ error: 'storage unavailable' }, 503);
  }
}

/** The spec's problems as a sweep would be refused with them; none when it would be accepted. */
function specIssues(remix: Remix): SpecIssue[] {
  try {
    parseSpec(remix.spec);
    return [];
  } catch (err) {
    if (err instanceof SpecError) return err.details;
    throw err;
  }
}

export function remixRoute(deps: RemixDeps): Hono {
  const app = new Hono();
  const upload = tooLarge(REMIX_MAX_BYTES, '20 MB');
  const small = tooLarge(KEY_BODY_MAX_BYTES, '4 KiB');
  app.post(
    '/',
    (c, next) => (typeOf(c) === 'image/png' ? upload(c, next) : small(c, next)),
    async (c) => {
      const type = typeOf(c);
      let png: Buffer | Response;
      if (type === 'image/png') png = Buffer.from(await c.req.arrayBuffer());
      else if (type === 'application/json') png = await imageByKey(c, deps);
      else return c.json({ error: `unsupported content type "${type || 'none'}": send image/png or application/json` }, 415);
      if (png instanceof Response) return png;
      let remix: Remix;
      try {
        remix = remixPng(png);
      } catch (err) {
        if (!(err instanceof RemixError)) throw err;
        return err.reason === 'not-png' ? c.json({ error: err.message }, 400) : c.json({ error: err.message, found: err.found }, 422);
      }
      const issues = specIssues(remix);
      const answer: RemixAnswer = issues.length ? { ...remix, issues } : remix;
      return c.json(answer);
    },
  );
  return app;
}
