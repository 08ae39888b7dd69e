/**
 * Wake-ups between replicas on PostgreSQL: commits that queue jobs or write
 * outbox rows NOTIFY (triggers in postgres-schema.ts); one connection per
 * engine LISTENs, opened with the first subscriber and closed with the last.
 * A notification is a hint (PostgreSQL drops none while the session lives,
 * but one sent while it was down is lost): after a lost connection it
 * reconnects with a growing pause and then wakes everyone for both, so
 * nothing committed meanwhile waits for the next poll. The same connection
 * LISTENs for the changes live clients follow (sweeps, nodes); after a lost
 * connection their listeners hear `resync`.
 */
import type pg from 'pg';
import type { Change, Wake } from './engine.js';
import { createClient, type PoolOptions } from './postgres-pool.js';
import { CHANGES_CHANNEL, WAKE_CHANNEL } from './postgres-schema.js';

/** A CHANGES_CHANNEL payload: 'sweep:<id>' or 'node:<status>:<id>'. */
function changeOf(payload: string): Change | undefined {
  if (payload.startsWith('sweep:')) return { type: 'sweep', sweepId: payload.slice(6) };
  const node = /^node:([a-z]+):(.*)$/s.exec(payload);
  return node ? { type: 'node', nodeId: node[2]!, status: node[1]! } : undefined;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

export class WakeListener {
  private client: Promise<pg.Client> | undefined;
  private readonly listeners = new Set<(wake: Wake) => void>();
  private readonly changeListeners = new Set<(change: Change) => void>();
  private retry: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private closed = false;
  /** Jobs wakes heard (and connections lost) so far; undefined while not listening (postgres-dry-queue.ts). */
  private jobsHeard: number | undefined;
  private generation = 0;

  /** `newClient`: how its listening connection is made (a test fails its LISTEN). */
  constructor(
    private readonly conn: PoolOptions,
    private readonly newClient: (conn: PoolOptions) => pg.Client = createClient,
  ) {}

  /** Adds a listener; resolves once this engine's connection is listening. */
  add(onWake: (wake: Wake) => void): Promise<() => Promise<void>> {
    return this.addTo(this.listeners, onWake);
  }

  /** Adds a listener of changes; resolves once this engine's connection is listening. */
  addChanges(onChange: (change: Change) => void): Promise<() => Promise<void>> {
    return this.addTo(this.changeListeners, onChange);
  }

  private async addTo<T>(set: Set<(value: T) => void>, on: (value: T) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store engine closed');
    // A listener of its own, so one subscribed twice is unsubscribed once each.
    const listener = (value: T) => on(value);
    set.add(listener);
    try {
      await this.connection();
    } catch (err) {
      set.delete(listener);
      throw err;
    }
    return async () => {
      set.delete(listener);
      if (this.idle()) await this.disconnect();
    };
  }

  private idle(): boolean {
    return this.listeners.size === 0 && this.changeListeners.size === 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.changeListeners.clear();
    await this.disconnect();
  }

  /**
   * A count that moves with every jobs wake this engine hears, undefined
   * while it is not listening: work a caller saw as missing may have come
   * since it read the count when the count has moved.
   */
  jobsWakes(): number | undefined {
    return this.jobsHeard;
  }

  private heardJobs(listening: boolean): void {
    this.generation++;
    this.jobsHeard = listening ? this.generation : undefined;
  }

  private emit(wake: Wake): void {
    if (wake.jobs && this.jobsHeard !== undefined) this.heardJobs(true);
    this.tell(this.listeners, wake);
  }

  private tell<T>(set: Set<(value: T) => void>, value: T): void {
    let failure: unknown;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (err) {
        failure ??= err;
      }
    }
    // Every listener heard it; the first error surfaces as an EventEmitter listener's would.
    if (failure !== undefined) {
      setImmediate(() => {
        throw failure;
      });
    }
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    // eslint-disable-next-line prefer-const -- read by the closures below, assigned once they exist
    let connecting: Promise<pg.Client> | undefined;
    this.client = (async () => {
      const client = this.newClient(this.conn);
      let failed = false;
      client.on('notification', (m) => {
        if (m.channel === WAKE_CHANNEL) this.emit({ jobs: m.payload === 'jobs', outbox: m.payload === 'outbox' });
        const change = m.channel === CHANGES_CHANNEL ? changeOf(m.payload ?? '') : undefined;
        if (change) this.tell(this.changeListeners, change);
      });
      const lost = () => {
        if (failed || this.client !== connecting) return;
        this.heardJobs(false);
        this.client = undefined;
        this.scheduleReconnect();
      };
      client.on('error', lost);
      client.on('end', lost);
      try {
        await client.connect();
      } catch (err) {
        failed = true;
        throw err;
      }
      try {
        await client.query(`LISTEN ${WAKE_CHANNEL}; LISTEN ${CHANGES_CHANNEL}`);
        // Not when closed or replaced while connecting: then nobody will hear this connection's wakes.
        if (this.client === connecting && !this.closed) this.heardJobs(true);
      } catch (err) {
        // Connected but not listening: end the session, or each failed try would leave one open.
        failed = true;
        await client.end().catch(() => {});
        throw err;
      }
      return client;
    })();
    connecting = this.client;
    connecting.catch(() => {
      if (this.client === connecting) this.client = undefined;
    });
    return connecting;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.idle() || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.closed || this.idle()) return;
      this.connection().then(
        () => {
          this.retryMs = RETRY_MIN_MS;
          // Whatever was committed while nobody listened: look again.
          this.emit({ jobs: true, outbox: true });
          this.tell(this.changeListeners, { type: 'resync' });
        },
        () => {
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
          this.scheduleReconnect();
        },
      );
    }, this.retryMs);
  }

  private async disconnect(): Promise<void> {
    this.heardJobs(false);
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await (await client.catch(() => undefined))?.end().catch(() => {});
  }
}
