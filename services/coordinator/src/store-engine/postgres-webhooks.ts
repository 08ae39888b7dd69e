/**
 * The PostgreSQL engine's webhooks (store/webhooks.ts on SQLite): the
 * subscriptions, and one delivery row per subscription per event, written by
 * the same `enqueue` that writes the event's outbox row, so in its
 * transaction (postgres-helpers.ts). Replicas sending at once claim
 * deliveries (`claimDeliveries`, SKIP LOCKED and a claim that lapses, as the
 * outbox's): none is handed out twice while its claim lasts. Rows read back
 * leave `claimed_until` out, so they equal SQLite's.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { SUBJECTS } from '@nightshift/common';
import type { AttemptOutcome, AttemptRow, DeliveryRow, DeliveryState, DueDelivery, WebhookEvent, WebhookEventData, WebhookFormat, WebhookRow } from '../store/webhooks.js';
import type { JobState, SweepCounts, SweepRow } from '../store/rows.js';
import type { WebhookEngine } from './engine-faces.js';
import { inTransaction } from './postgres-pool.js';
import { LOCK_NAMESPACE } from './postgres-schema.js';
import { CapReached } from '../store/limits.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** webhook_deliveries' columns as SQLite has them (`d` the table's alias). */
const DELIVERY = ['id', 'webhook_id', 'event_id', 'event', 'data_json', 'state', 'attempts', 'next_attempt_at', 'last_status', 'last_error', 'created_at', 'finished_at']
  .map((c) => `d.${c}`)
  .join(', ');

export class PgWebhooks implements WebhookEngine {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  async createWebhook(w: { url: string; events: WebhookEvent[]; secret: string; format: WebhookFormat; owner?: string; max?: number }): Promise<WebhookRow> {
    const id = `wh_${randomBytes(8).toString('hex')}`;
    return inTransaction(this.pool, async (c) => {
      if (w.max !== undefined) {
        // Creations take turns, whichever replica they reach: the later one counts the earlier.
        await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, 'webhooks']);
        if ((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM webhooks')).rows[0]!.n >= w.max) throw new CapReached('webhooks', w.max);
      }
      const { rows } = await c.query<WebhookRow>(
        'INSERT INTO webhooks (id, url, events_json, secret, format, created_at, owner) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *',
        [id, w.url, JSON.stringify(w.events), w.secret, w.format, this.now(), w.owner ?? 'local'],
      );
      return rows[0]!;
    });
  }

  async getWebhook(id: string): Promise<WebhookRow | undefined> {
    return (await this.pool.query<WebhookRow>('SELECT * FROM webhooks WHERE id = $1', [id])).rows[0];
  }

  async listWebhooks(owner?: string): Promise<WebhookRow[]> {
    if (owner !== undefined) return (await this.pool.query<WebhookRow>('SELECT * FROM webhooks WHERE owner = $1 ORDER BY created_at, id COLLATE "C"', [owner])).rows;
    return (await this.pool.query<WebhookRow>('SELECT * FROM webhooks ORDER BY created_at, id COLLATE "C"')).rows;
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return inTransaction(this.pool, async (c) => {
      await c.query('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)', [id]);
      await c.query('DELETE FROM webhook_deliveries WHERE webhook_id = $1', [id]);
      return (await c.query('DELETE FROM webhooks WHERE id = $1', [id])).rowCount === 1;
    });
  }

  async webhookDeliveries(webhookId: string, limit: number): Promise<DeliveryRow[]> {
    return (await this.pool.query<DeliveryRow>(`SELECT ${DELIVERY} FROM webhook_deliveries d WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2`, [webhookId, limit])).rows;
  }

  async deliveryAttempts(deliveryIds: number[]): Promise<AttemptRow[]> {
    if (deliveryIds.length === 0) return [];
    return (await this.pool.query<AttemptRow>('SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt', [deliveryIds])).rows;
  }

  async dueDeliveries(now: number, limit: number): Promise<DueDelivery[]> {
    return (
      await this.pool.query<DueDelivery>(
        `SELECT ${DELIVERY}, w.url, w.secret, w.format FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
          WHERE d.state = 'pending' AND d.next_attempt_at <= $1 ORDER BY d.next_attempt_at, d.id LIMIT $2`,
        [now, limit],
      )
    ).rows;
  }

  async claimDeliveries(now: number, limit: number, claimMs: number): Promise<DueDelivery[]> {
    // The claim is on the row itself: a claimer that waited re-checks it and passes over a row just claimed.
    const { rows } = await this.pool.query<DueDelivery>(
      `WITH claimed AS (
         UPDATE webhook_deliveries SET claimed_until = $3
          WHERE id IN (SELECT id FROM webhook_deliveries
                        WHERE state = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
                        ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING *
       )
       SELECT ${DELIVERY}, w.url, w.secret, w.format FROM claimed d JOIN webhooks w ON w.id = d.webhook_id ORDER BY d.next_attempt_at, d.id`,
      [now, limit, now + claimMs],
    );
    return rows;
  }

  async nextDeliveryAt(): Promise<number | undefined> {
    return (await this.pool.query<{ t: number | null }>(`SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE state = 'pending'`)).rows[0]!.t ?? undefined;
  }

  async recordAttempt(deliveryId: number, o: AttemptOutcome): Promise<void> {
    const state: DeliveryState = o.delivered ? 'delivered' : o.next === undefined ? 'failed' : 'pending';
    await inTransaction(this.pool, async (c) => {
      const row = (await c.query<{ attempts: number }>('SELECT attempts FROM webhook_deliveries WHERE id = $1 FOR UPDATE', [deliveryId])).rows[0];
      if (!row) return; // its webhook was deleted meanwhile
      await c.query('INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)', [
        deliveryId, row.attempts + 1, o.at, o.statusCode ?? null, o.error ?? null, o.durationMs,
      ]);
      await c.query(
        `UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, last_status = $3, last_error = $4, finished_at = $5, claimed_until = NULL WHERE id = $6`,
        [state, o.next ?? o.at, o.statusCode ?? null, o.error ?? null, state === 'pending' ? null : o.at, deliveryId],
      );
    });
  }

  async pruneDeliveries(before: number, limit: number): Promise<number> {
    return inTransaction(this.pool, async (c) => {
      const ids = (
        await c.query<{ id: number }>(`SELECT id FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED`, [before, limit])
      ).rows.map((r) => r.id);
      if (ids.length === 0) return 0;
      await c.query('DELETE FROM webhook_attempts WHERE delivery_id = ANY($1)', [ids]);
      return (await c.query('DELETE FROM webhook_deliveries WHERE id = ANY($1)', [ids])).rowCount ?? 0;
    });
  }
}

/**
 * The deliveries an outbox event makes, written by the caller's transaction
 * (store/webhooks.ts's rule): a sweep's end or cancel reaches its owner's
 * webhooks that ask for it, a node going down everyone's.
 */
export async function writeDeliveries(c: Q, subject: string, msgId: string, payload: unknown, now: number): Promise<void> {
  const event = await webhookEventOf(c, subject, payload, now);
  if (!event) return;
  const hooks = (await c.query<Pick<WebhookRow, 'id' | 'events_json' | 'owner'>>('SELECT id, events_json, owner FROM webhooks ORDER BY created_at, id COLLATE "C"')).rows.filter(
    (w) => (event.owner === undefined || w.owner === event.owner) && (JSON.parse(w.events_json) as string[]).includes(event.event),
  );
  if (hooks.length === 0) return;
  const data = await event.data();
  if (!data) return;
  await c.query(
    `INSERT INTO webhook_deliveries (webhook_id, event_id, event, data_json, state, attempts, next_attempt_at, created_at)
     SELECT w, $2, $3, $4, 'pending', 0, $5, $5 FROM unnest($1::text[]) WITH ORDINALITY AS t (w, n) ORDER BY n
     ON CONFLICT (webhook_id, event_id) DO NOTHING`,
    [hooks.map((w) => w.id), msgId, event.event, JSON.stringify(data), now],
  );
}

interface EventOf {
  event: WebhookEvent;
  data: () => Promise<WebhookEventData | undefined>;
  owner?: string;
}

async function webhookEventOf(c: Q, subject: string, payload: unknown, now: number): Promise<EventOf | undefined> {
  const p = payload as Record<string, unknown>;
  if (subject === SUBJECTS.sweepDone || subject === SUBJECTS.sweepCancelled) {
    const sweepId = String(p.sweepId);
    const event: WebhookEvent = subject === SUBJECTS.sweepCancelled ? 'sweep.cancelled' : p.status === 'failed' ? 'sweep.failed' : 'sweep.finished';
    const sweep = (await c.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1', [sweepId])).rows[0];
    return { event, data: async () => (sweep ? sweepEventData(c, sweep, now) : undefined), owner: sweep?.owner ?? 'local' };
  }
  if (subject === SUBJECTS.nodeDown) {
    const nodeId = String(p.nodeId);
    return {
      event: 'node.down',
      data: async () => {
        const node = (await c.query<{ name: string }>('SELECT name FROM nodes WHERE id = $1', [nodeId])).rows[0];
        return { nodeId, name: node?.name ?? nodeId, why: String(p.why ?? ''), requeued: Number(p.requeued ?? 0), at: String(p.at ?? new Date(now).toISOString()) };
      },
    };
  }
  return undefined;
}

async function sweepEventData(c: Q, s: SweepRow, now: number): Promise<WebhookEventData> {
  const counts: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
  const { rows } = await c.query<{ state: JobState; n: number }>('SELECT state, n FROM sweep_counts WHERE sweep_id = $1', [s.id]);
  for (const r of rows) counts[r.state === 'leased' ? 'running' : r.state] += r.n;
  const finishedAt = s.finished_at ?? now;
  return {
    sweepId: s.id,
    name: s.name,
    status: s.status,
    counts,
    createdAt: new Date(s.created_at).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    durationMs: finishedAt - s.created_at,
  };
}
