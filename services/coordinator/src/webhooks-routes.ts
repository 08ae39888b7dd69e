/**
 * /api/webhooks (issue 16): register, list, delete, and see each delivery's
 * attempts. A webhook belongs to the user who registered it: others are
 * told it does not exist (404), admins see all. Secrets are write-only.
 */
import { Hono, type Context } from 'hono';
import { tooLarge } from './body-rules.js';
import { z } from 'zod';
import { fieldIssues, type Config } from '@nightshift/common';
import type { WebhookEngine } from './store-engine/engine.js';
import { WEBHOOK_EVENTS, WEBHOOK_FORMATS, type AttemptRow, type WebhookEvent, type WebhookRow } from './store/webhooks.js';
import { refuseUrl } from './webhooks.js';
import { callerOf, mayUse, ownerFilter } from './callers.js';
import { CapReached } from './store-engine/engine.js';

/** More than a farm needs; a cap keeps every event's fan-out small. */
export const MAX_WEBHOOKS = 100;

export interface WebhookRouteDeps {
  config: Pick<Config, 'NIGHTSHIFT_WEBHOOK_ALLOW'>;
  engine: { webhooks: Pick<WebhookEngine, 'createWebhook' | 'listWebhooks' | 'getWebhook' | 'deleteWebhook' | 'webhookDeliveries' | 'deliveryAttempts'> };
}

const NewWebhook = z.strictObject({
  url: z.string().min(1),
  events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(WEBHOOK_EVENTS.length * 4),
  secret: z.string().min(1).max(256),
  format: z.enum(WEBHOOK_FORMATS).default('json'),
});

const view = (w: WebhookRow) => ({ id: w.id, url: w.url, events: JSON.parse(w.events_json) as WebhookEvent[], format: w.format, createdAt: new Date(w.created_at).toISOString() });
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function webhookRoutes(deps: WebhookRouteDeps): Hono {
  const app = new Hono();

  app.post('/', tooLarge(16 * 1024, '16 KiB'), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
    }
    const parsed = NewWebhook.safeParse(body);
    if (!parsed.success) {
      return c.json({ error: 'invalid webhook', details: fieldIssues(parsed.error.issues) }, 400);
    }
    const refused = refuseUrl(parsed.data.url, deps.config.NIGHTSHIFT_WEBHOOK_ALLOW);
    if (refused) return c.json({ error: refused, details: [{ path: 'url', message: refused }] }, 400);
    try {
      // Counted in the insert's own transaction: two creations at once, through one replica or two, cannot both pass the cap.
      const row = await deps.engine.webhooks.createWebhook({ ...parsed.data, events: [...new Set(parsed.data.events)], owner: callerOf(c).user, max: MAX_WEBHOOKS });
      return c.json({ id: row.id }, 201);
    } catch (err) {
      if (err instanceof CapReached) return c.json({ error: `at most ${MAX_WEBHOOKS} webhooks`, details: [] }, 409);
      throw err;
    }
  });

  app.get('/', async (c) => c.json({ webhooks: (await deps.engine.webhooks.listWebhooks(ownerFilter(callerOf(c)))).map(view) }));

  /** The webhook if the caller may use it; another user's is as absent as a missing one. */
  const ownHook = async (c: Context) => {
    const hook = await deps.engine.webhooks.getWebhook(c.req.param('id') ?? '');
    return hook && mayUse(callerOf(c), hook.owner) ? hook : undefined;
  };

  app.delete('/:id', async (c) => ((await ownHook(c)) && (await deps.engine.webhooks.deleteWebhook(c.req.param('id'))) ? c.body(null, 204) : c.json({ error: 'no such webhook' }, 404)));

  app.get('/:id/deliveries', async (c) => {
    const hook = await ownHook(c);
    if (!hook) return c.json({ error: 'no such webhook' }, 404);
    const limit = Number(c.req.query('limit') ?? '100');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) return c.json({ error: 'limit must be an integer from 1 to 1000' }, 400);
    const rows = await deps.engine.webhooks.webhookDeliveries(hook.id, limit);
    const attempts = new Map<number, AttemptRow[]>();
    for (const a of await deps.engine.webhooks.deliveryAttempts(rows.map((r) => r.id))) attempts.set(a.delivery_id, [...(attempts.get(a.delivery_id) ?? []), a]);
    return c.json({
      webhook: view(hook),
      deliveries: rows.map((d) => ({
        id: d.id,
        eventId: d.event_id,
        event: d.event,
        state: d.state,
        attempts: d.attempts,
        lastStatus: d.last_status,
        lastError: d.last_error,
        createdAt: iso(d.created_at),
        nextAttemptAt: d.state === 'pending' ? iso(d.next_attempt_at) : null,
        finishedAt: iso(d.finished_at),
        log: (attempts.get(d.id) ?? []).map((a) => ({ attempt: a.attempt, at: iso(a.at), statusCode: a.status_code, error: a.error, durationMs: a.duration_ms })),
      })),
    });
  });

  return app;
}
