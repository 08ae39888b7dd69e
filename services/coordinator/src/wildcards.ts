/**
 * /api/wildcards: the lists `__name__` picks lines from (docs/design.md
 * "Wildcards and dynamic prompts"). Mounted by http.ts behind the API token
 * and the request guard (which admits text/plain on the PUT only).
 *
 * - GET    /api/wildcards        → { wildcards: [{ name, lines }] }
 * - GET    /api/wildcards/:name  → { name, lines: [usable lines], text }
 * - PUT    /api/wildcards/:name  text/plain, ≤ 1 MiB, ≤ 10,000 lines → { name, lines }
 * - DELETE /api/wildcards/:name  → 204
 */
import { Hono, type Context } from 'hono';
import { mediaType, tooLarge } from './body-rules.js';
import { WILDCARD_NAME_RE } from '@nightshift/common';
import { wildcardLines } from '@nightshift/sweep';
import { callerOf } from './callers.js';
import { mayUseWildcard, type WildcardOwnerEngine } from './wildcard-owners.js';
import { checkWildcardText, listWildcards, MAX_WILDCARD_BYTES, readWildcard, removeWildcard, writeWildcard, type WildcardBucket } from './wildcards-store.js';

const badName = (c: Context) => c.json({ error: `invalid list name "${c.req.param('name')}": 1-64 of a-z, 0-9, "_", "-"`, details: [] }, 400);

/**
 * The routes over the farm's bucket; without one (handler tests with a stub storage) they answer 503.
 * A user sees and changes their own lists only (`owners`, wildcard-owners.ts): another's answers 404.
 */
export function wildcardsRoute(storage: Partial<WildcardBucket>, owners: WildcardOwnerEngine): Hono {
  const app = new Hono();
  const { client, bucket } = storage;
  if (!client || bucket === undefined) {
    app.all('*', (c) => c.json({ error: 'wildcard lists are unavailable: this coordinator has no bucket' }, 503));
    return app;
  }
  const s: WildcardBucket = { client, bucket };

  const may = (c: Context) => mayUseWildcard(owners, callerOf(c));
  const notYours = (c: Context) => c.json({ error: `no wildcard list "${c.req.param('name')}"` }, 404);

  app.get('/', async (c) => {
    const mine = may(c);
    const shown: { name: string; lines: number }[] = [];
    for (const w of await listWildcards(s)) if (await mine(w.name)) shown.push(w);
    return c.json({ wildcards: shown });
  });

  app.get('/:name', async (c) => {
    const name = c.req.param('name');
    if (!WILDCARD_NAME_RE.test(name)) return badName(c);
    if (!(await may(c)(name))) return notYours(c);
    const text = await readWildcard(s, name);
    if (text === undefined) return c.json({ error: `no wildcard list "${name}"` }, 404);
    return c.json({ name, lines: wildcardLines(text), text });
  });

  app.put(
    '/:name',
    tooLarge(MAX_WILDCARD_BYTES, '1 MiB'),
    async (c) => {
      const name = c.req.param('name');
      if (!WILDCARD_NAME_RE.test(name)) return badName(c);
      // A new name becomes the caller's; one that is someone else's (a row, or a list from before users: the local user's) is not theirs to write.
      if ((await owners.people.wildcardOwner(name)) === undefined && (await readWildcard(s, name)) === undefined) await owners.people.setWildcardOwner(name, callerOf(c).user);
      if (!(await may(c)(name))) return notYours(c);
      const type = mediaType(c.req.header('content-type'));
      if (type !== 'text/plain') return c.json({ error: 'send the list as text/plain, one option a line', details: [] }, 415);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
      } catch {
        return c.json({ error: 'the list is not UTF-8 text', details: [] }, 400);
      }
      const issues = checkWildcardText(text);
      if (issues.length) return c.json({ error: `invalid wildcard list "${name}"`, details: issues }, 400);
      return c.json({ name, lines: await writeWildcard(s, name, text) });
    },
  );

  app.delete('/:name', async (c) => {
    const name = c.req.param('name');
    if (!WILDCARD_NAME_RE.test(name)) return badName(c);
    if (!(await may(c)(name))) return notYours(c);
    if (!(await removeWildcard(s, name))) return c.json({ error: `no wildcard list "${name}"` }, 404);
    await owners.people.forgetWildcardOwner(name);
    return c.body(null, 204);
  });
  return app;
}
