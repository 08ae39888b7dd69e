/**
 * GET /api/events: live changes as Server-Sent Events. Bounded in every
 * direction: a cap on clients (503 beyond), and per client a bounded queue
 * in which a slow reader keeps only the newest progress (and preview) of
 * each job, and sweep snapshots coalesced to a few per second. The stream
 * ends when the client goes or the service shuts down.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Live, LiveEvent } from './live.js';

export interface SseOptions {
  live: Pick<Live, 'subscribe' | 'onClose'>;
  /** The sweep's current view, sent as a `sweep` event. */
  snapshot(sweepId: string): unknown;
  maxClients: number;
  /** Job and node events held for one client; past it the oldest are dropped. */
  maxQueue: number;
  /** Minimum time between snapshots of one sweep. */
  snapshotIntervalMs?: number;
  /** Time without events before a keep-alive ping. */
  pingMs?: number;
  /**
   * Which events this request may see (a user, their own sweeps'); all when absent or undefined.
   * A promise when the answer must be read (a sweep not seen before): events wait behind it, in order.
   */
  visible?: (c: Context) => ((e: LiveEvent) => boolean | Promise<boolean>) | undefined;
  /** Whether this request's caller is still who it was (a revoked key ends the stream before anything more is sent). */
  stillAllowed?: (c: Context) => (() => boolean | Promise<boolean>) | undefined;
}

type Progress = Extract<LiveEvent, { type: 'progress' }>;

/** What one client has yet to be sent. */
export class ClientQueue {
  private readonly events: LiveEvent[] = [];
  /** Newest progress per job: older steps and previews are stale once a newer one exists. */
  private readonly progress = new Map<string, Progress>();
  readonly dirty = new Set<string>();
  dropped = 0;

  constructor(private readonly max: number) {}

  push(e: LiveEvent): void {
    if (e.type === 'sweep') this.dirty.add(e.sweepId);
    else if (e.type === 'progress') {
      this.progress.delete(e.jobId);
      this.progress.set(e.jobId, e);
      if (this.progress.size > this.max) {
        this.progress.delete(this.progress.keys().next().value!);
        this.dropped++;
      }
    } else {
      if (e.type === 'job' && e.state !== 'leased') this.progress.delete(e.jobId);
      this.events.push(e);
      if (this.events.length > this.max) {
        this.events.shift();
        this.dropped++;
      }
    }
  }

  /** Job/node events first, then the newest progress of each job. */
  take(): LiveEvent[] {
    const out = [...this.events.splice(0), ...this.progress.values()];
    this.progress.clear();
    return out;
  }

  get empty(): boolean {
    return !this.events.length && !this.progress.size;
  }
}

export function eventsRoute(opts: SseOptions) {
  let clients = 0;
  const interval = opts.snapshotIntervalMs ?? 250;
  const pingMs = opts.pingMs ?? 15_000;
  return (c: Context) => {
    if (clients >= opts.maxClients) {
      return c.json({ error: `too many live clients (limit ${opts.maxClients}, NIGHTSHIFT_SSE_MAX_CLIENTS); try again later` }, 503);
    }
    clients++;
    const only = c.req.query('sweep');
    const visible = opts.visible?.(c);
    const allowed = opts.stillAllowed?.(c);
    return streamSSE(c, async (stream) => {
      const queue = new ClientQueue(opts.maxQueue);
      let wake: (() => void) | undefined;
      let closed = false;
      const take = (e: LiveEvent) => {
        queue.push(e);
        wake?.();
      };
      // Events whose visibility is being read, and those behind them: they keep their order.
      // The last link of a run clears the chain, so later events are answered at once again;
      // an event whose visibility cannot be read (the database failing) is not sent.
      let waiting: Promise<void> | undefined;
      const chain = (link: Promise<void>) => {
        const settled = link.catch(() => undefined);
        waiting = settled;
        void settled.then(() => {
          if (waiting === settled) waiting = undefined;
        });
      };
      const unsubscribe = opts.live.subscribe((e) => {
        if (only && 'sweepId' in e && e.sweepId !== only) return;
        if (!visible) return take(e);
        if (waiting) return chain(waiting.then(async () => ((await visible(e)) ? take(e) : undefined)));
        const seen = visible(e);
        if (typeof seen !== 'boolean') return chain(seen.then((yes) => (yes ? take(e) : undefined)));
        if (seen) take(e);
      });
      const unClose = opts.live.onClose(() => {
        closed = true;
        wake?.();
      });
      stream.onAbort(() => wake?.());
      try {
        await stream.writeSSE({ event: 'hello', data: JSON.stringify({ at: new Date().toISOString() }) });
        let lastSnapshots = 0;
        while (!stream.aborted) {
          // Checked before every batch, ping and snapshot: a stream outlives no revocation.
          if (allowed && !(await allowed())) break;
          for (const e of queue.take()) await stream.writeSSE({ event: e.type, data: JSON.stringify(e) });
          if (queue.dropped) {
            await stream.writeSSE({ event: 'lagged', data: JSON.stringify({ dropped: queue.dropped }) });
            queue.dropped = 0;
          }
          // Shutting down: what was queued has gone out; the stream ends.
          if (closed) break;
          const wait = interval - (Date.now() - lastSnapshots);
          if (queue.dirty.size && wait <= 0) {
            for (const sweepId of [...queue.dirty]) {
              queue.dirty.delete(sweepId);
              await stream.writeSSE({ event: 'sweep', data: JSON.stringify({ type: 'sweep', sweepId, sweep: await opts.snapshot(sweepId) }) });
            }
            lastSnapshots = Date.now();
            continue;
          }
          if (!queue.empty) continue;
          let timer: NodeJS.Timeout | undefined;
          const woke = await new Promise<boolean>((r) => {
            wake = () => r(true);
            timer = setTimeout(() => r(false), queue.dirty.size ? Math.max(wait, 10) : pingMs);
          });
          // One timer per wait, cleared on wake: a busy stream leaves none behind.
          clearTimeout(timer);
          wake = undefined;
          if (!woke && queue.empty && !queue.dirty.size && !stream.aborted && !closed) await stream.writeSSE({ event: 'ping', data: '{}' });
        }
      } finally {
        unsubscribe();
        unClose();
        clients--;
      }
    });
  };
}
