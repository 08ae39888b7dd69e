/**
 * /api/keys (admin only) and /api/me (issue 16 "People and keys").
 *
 * - POST   /api/keys        {name, admin?, quotaImages?, weight?} → 201 {name, key} (the secret, shown this once)
 * - GET    /api/keys        → {keys: [{name, admin, weight, quotaImages, active, running}]}
 * - DELETE /api/keys/:name  → 204; the user's keys are refused from the next request on
 * - GET    /api/me          → {user, admin, quota: {imagesPerDay, usedToday, leftToday, resetsAt} | null}
 *
 * A key's user is its name. The first key of a farm without
 * NIGHTSHIFT_API_TOKEN must be an admin key: from then on the farm asks for
 * a key, and someone must still be able to manage keys.
 */
import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { fieldIssues, type Config } from '@nightshift/common';
import { tooLarge } from './body-rules.js';
import type { PeopleEngine, StoreEngine } from './store-engine/engine.js';
import { callerOf, identify, keyHash, LOCAL_USER } from './callers.js';
import { quotaOf } from './quota.js';

export interface KeyRouteDeps {
  config: Pick<Config, 'NIGHTSHIFT_API_TOKEN'>;
  engine: Pick<StoreEngine, 'addKey' | 'addFirstKey' | 'revokeKeys' | 'revokeKeysKeepingAnAdmin' | 'getUser' | 'userByKeyHash'> & { people: Pick<PeopleEngine, 'listUsers' | 'imagesSubmittedSince' | 'hasActiveKeys'> };
}

export const KEY_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const NewKey = z.strictObject({
  name: z.string().regex(KEY_NAME_RE, '1-64 of a-z, 0-9, ".", "_", "-", starting with a letter or digit').refine((n) => n !== LOCAL_USER, `"${LOCAL_USER}" is the farm token's user`),
  admin: z.boolean().default(false),
  quotaImages: z.number().int().min(0).max(100_000_000).nullable().default(null),
  weight: z.number().min(0.01).max(1_000).default(1),
});

export function keyRoutes(deps: KeyRouteDeps): Hono {
  const app = new Hono();
  // Everything under /api/keys is an admin's; anyone else is told it does not exist.
  app.use('*', async (c, next) => (callerOf(c).admin ? next() : c.json({ error: 'not found' }, 404)));

  app.post('/', tooLarge(4 * 1024, '4 KiB'), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
    }
    const parsed = NewKey.safeParse(body);
    if (!parsed.success) return c.json({ error: 'invalid key', details: fieldIssues(parsed.error.issues) }, 400);
    const k = parsed.data;
    // The caller was checked before the body was read. On a farm that was open then, another
    // request may have made its first key meanwhile (a slow body must not outlive the open
    // farm), or the caller's key been revoked: ask again.
    const caller = await identify(deps.engine, deps.config.NIGHTSHIFT_API_TOKEN, c.req.header('authorization'));
    const asksNow = { error: 'missing, wrong or revoked API token or key (the farm asks for a key now)', details: [] };
    if (!caller?.admin) return c.json(asksNow, 401);
    // Without a farm token the local user is only ever the open farm's caller (no key is named so):
    // its key is the farm's first, added only while still no key is active (addFirstKey checks
    // that in the insert's transaction, so a key made since this request's check refuses it).
    const open = !deps.config.NIGHTSHIFT_API_TOKEN && caller.user === LOCAL_USER;
    if (open && !k.admin) {
      return c.json({ error: 'the first key of a farm without NIGHTSHIFT_API_TOKEN must be an admin key (--admin): once a key exists the farm asks for one', details: [] }, 409);
    }
    const secret = `nsk_${randomBytes(32).toString('base64url')}`;
    const user = { name: k.name, admin: k.admin, weight: k.weight, quotaImages: k.quotaImages };
    if (open) {
      if (!(await deps.engine.addFirstKey(user, keyHash(secret)))) return c.json(asksNow, 401);
    } else if (!(await deps.engine.addKey(user, keyHash(secret)))) {
      return c.json({ error: `${k.name} already has a key: revoke it first`, details: [] }, 409);
    }
    return c.json({ name: k.name, admin: k.admin, weight: k.weight, quotaImages: k.quotaImages, key: secret }, 201);
  });

  app.get('/', async (c) =>
    c.json({
      keys: (await deps.engine.people.listUsers()).map((u) => ({ name: u.name, admin: u.admin === 1, weight: u.weight, quotaImages: u.quota_images, active: u.keys > 0, running: u.running })),
    }),
  );

  app.delete('/:name', async (c) => {
    const name = c.req.param('name');
    if (!KEY_NAME_RE.test(name)) return c.json({ error: `not a key name: 1-64 of a-z, 0-9, ".", "_", "-", starting with a letter or digit` }, 400);
    // Without NIGHTSHIFT_API_TOKEN, revoking the last admin key would leave no key at all
    // (the farm silently open to everyone again) or nobody able to manage keys: the engine
    // checks that in the revocation's transaction (two admins revoked at once leave one).
    const revoked = deps.config.NIGHTSHIFT_API_TOKEN ? await deps.engine.revokeKeys(name) : await deps.engine.revokeKeysKeepingAnAdmin(name);
    if (revoked === undefined) {
      return c.json({ error: `${name} holds the farm's last admin key: add another admin key first (or set NIGHTSHIFT_API_TOKEN)` }, 409);
    }
    if (!revoked) return c.json({ error: `no active key named ${name}` }, 404);
    return c.body(null, 204);
  });
  return app;
}

export function meRoute(deps: KeyRouteDeps): Hono {
  const app = new Hono();
  app.get('/', async (c) => {
    const caller = callerOf(c);
    return c.json({ user: caller.user, admin: caller.admin, quota: await quotaOf(deps.engine, caller.user, Date.now()) });
  });
  return app;
}
