/**
 * The durable JetStream consumers: `indexer` for nightshift.image.rendered
 * and `indexer-upscaled` for nightshift.image.upscaled (nats-server 2.9 has
 * no multi-filter consumers, so two durables).
 *
 * Rendered images go through `concurrency` workers, each looping: pull a
 * batch (≤ batchSize), fetch the PNGs from S3 in parallel, decode, embed the
 * batch in one forward pass, store it (SQLite commit first), then ack. While
 * one worker embeds, another fetches, so the stages overlap; and because a
 * worker only pulls when it is free, at most concurrency × batchSize events
 * are ever in this process — a burst of any size waits in the stream, not in
 * memory. The consumer's max_ack_pending enforces the same bound server-side.
 */
import { AckPolicy, DeliverPolicy, type Consumer, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { assertRenderKey, assertSafeKey, decodeJson, imageKey, keyPrefix, renderKeyOf, sleep, STREAM, SUBJECTS, upscaledKey, type Bus, type ImageRenderedEvent, type ImageUpscaledEvent, type Logger, type Storage } from '@nightshift/common';
import type { ClipEmbedder, PreparedImage } from '@nightshift/models';
import type { Aesthetic } from './aesthetic.js';
import type { ImageMeta } from './catalog.js';
import { getObjectWithMeta } from './reindex.js';
import type { IndexStore } from './store.js';

export const CONSUMER = 'indexer';
export const UPSCALED_CONSUMER = 'indexer-upscaled';

export interface ConsumerOptions {
  batchSize: number;
  /** Batches processed at once (pipelining fetch, decode, embed and store). */
  concurrency: number;
  /** How long one pull waits to fill a batch (JetStream's minimum is 1 s). */
  expiresMs: number;
  /** Redelivery delay for an event not acked (e.g. the process died). */
  ackWaitMs: number;
  /** Test hook: `crash-after-embed[:N]` or `crash-after-store[:N]` kills the process (SIGKILL) at the N-th batch (default 1). */
  fault?: string | undefined;
}

/**
 * An event whose object key is not the one its renderKey names: indexing it
 * would file one image under another's name (a forged or corrupted event).
 */
export class KeyMismatchError extends Error {}

/** Redelivery delay after the n-th failed delivery: 1 s, 2 s, 4 s … up to a minute. */
export function retryDelayMs(deliveryCount: number): number {
  return Math.min(60_000, 1_000 * 2 ** Math.max(0, Math.min(deliveryCount, 10) - 1));
}

export const DEFAULT_CONSUMER_OPTIONS: ConsumerOptions = { batchSize: 32, concurrency: 2, expiresMs: 1_000, ackWaitMs: 60_000 };

/** Where the time goes, summed over batches (stages of different batches overlap, so these add up to more than wall time). */
export interface StageTimes {
  fetchMs: number;
  decodeMs: number;
  embedMs: number;
  storeMs: number;
}

export class IndexConsumer {
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly open = new Set<ConsumerMessages>();
  private faultCount = 0;
  readonly stats = {
    indexed: 0,
    /** Redeliveries (or re-publishes) of images already stored: acked without work. */
    skipped: 0,
    failed: 0,
    /** Events refused for good because their key is not their renderKey's. */
    refused: 0,
    /** Deliveries put back for later after a transient failure (e.g. the database busy). */
    retried: 0,
    variants: 0,
    inFlight: 0,
    peakInFlight: 0,
    batches: 0,
    times: { fetchMs: 0, decodeMs: 0, embedMs: 0, storeMs: 0 } as StageTimes,
  };

  constructor(
    private readonly bus: Bus,
    private readonly storage: Pick<Storage, 'client' | 'bucket' | 'get'>,
    private readonly store: IndexStore,
    private readonly embedder: ClipEmbedder,
    private readonly log: Logger,
    readonly opts: ConsumerOptions = DEFAULT_CONSUMER_OPTIONS,
    /** Scores each stored batch with the aesthetic head, when one is configured. */
    private readonly aesthetic?: Pick<Aesthetic, 'scoreIds'>,
  ) {}

  /** The most events this process holds at once. */
  get maxInFlight(): number {
    return this.opts.batchSize * this.opts.concurrency;
  }

  async start(): Promise<void> {
    await this.ensure(CONSUMER, SUBJECTS.imageRendered, this.maxInFlight);
    await this.ensure(UPSCALED_CONSUMER, SUBJECTS.imageUpscaled, this.opts.batchSize);
    for (let i = 0; i < this.opts.concurrency; i++) this.loops.push(this.loop(CONSUMER, (b) => this.process(b)));
    this.loops.push(this.loop(UPSCALED_CONSUMER, (b) => this.processUpscaled(b)));
  }

  private async ensure(name: string, subject: string, maxAckPending: number): Promise<void> {
    const wanted = { ack_wait: this.opts.ackWaitMs * 1_000_000, max_ack_pending: maxAckPending };
    let info;
    try {
      info = await this.bus.jsm.consumers.info(STREAM, name);
    } catch {
      try {
        await this.bus.jsm.consumers.add(STREAM, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: subject,
          max_deliver: -1,
          ...wanted,
        });
        return;
      } catch (err) {
        if (!String(err).includes('already')) throw err;
        info = await this.bus.jsm.consumers.info(STREAM, name);
      }
    }
    if (info.config.ack_wait !== wanted.ack_wait || info.config.max_ack_pending !== wanted.max_ack_pending) {
      try {
        await this.bus.jsm.consumers.update(STREAM, name, wanted);
      } catch (err) {
        this.log.warn({ consumer: name, err: String(err) }, 'indexer: could not update consumer settings; keeping the old ones');
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const it of this.open) it.stop();
    await Promise.all(this.loops);
  }

  private async loop(name: string, handle: (batch: JsMsg[]) => Promise<void>): Promise<void> {
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!this.stopped) {
      try {
        consumer ??= await this.bus.js.consumers.get(STREAM, name);
        const iter = await consumer.fetch({ max_messages: this.opts.batchSize, expires: this.opts.expiresMs });
        this.open.add(iter);
        const batch: JsMsg[] = [];
        try {
          for await (const m of iter) {
            batch.push(m);
            this.track(1);
          }
        } finally {
          this.open.delete(iter);
        }
        if (batch.length) await handle(batch);
        failures = 0;
      } catch (err) {
        failures++;
        consumer = undefined;
        if (failures === 1 || failures % 20 === 0) this.log.warn({ consumer: name, err: String(err), failures }, 'indexer: pull failed, retrying');
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(failures, 5)));
      }
    }
  }

  private track(n: number): void {
    this.stats.inFlight += n;
    if (this.stats.inFlight > this.stats.peakInFlight) this.stats.peakInFlight = this.stats.inFlight;
  }

  private settle(msg: JsMsg, how: 'ack' | 'term' | { nakMs: number }): void {
    if (how === 'ack') msg.ack();
    else if (how === 'term') msg.term();
    else msg.nak(how.nakMs);
    this.track(-1);
  }

  private fault(stage: 'after-embed' | 'after-store'): void {
    const f = this.opts.fault;
    if (!f?.startsWith(`crash-${stage}`)) return;
    const at = Number(f.split(':')[1] ?? 1);
    if (++this.faultCount < at) return;
    this.log.warn({ fault: f }, 'indexer: fault injection, killing the process');
    process.kill(process.pid, 'SIGKILL');
  }

  /** Embeds and stores a batch of rendered-image events, then acks them. */
  async process(batch: JsMsg[]): Promise<void> {
    const t0 = performance.now();
    const todo: { msg: JsMsg; meta: ImageMeta }[] = [];
    for (const msg of batch) {
      let meta: ImageMeta;
      try {
        meta = metaFromEvent(decodeJson<ImageRenderedEvent>(msg.data));
      } catch (err) {
        this.refuse(msg, err, 'indexer: malformed event dropped');
        continue;
      }
      // Redelivered (crash before ack, lost ack) or published twice: already stored, nothing to do.
      if (this.store.isCurrent(meta.renderKey, meta.key, meta.createdAt)) {
        this.stats.skipped++;
        this.settle(msg, 'ack');
        continue;
      }
      todo.push({ msg, meta });
    }
    if (!todo.length) return;

    const fetched = await Promise.allSettled(todo.map((t) => getObjectWithMeta(this.storage, t.meta.key)));
    const t1 = performance.now();
    const prepared = await Promise.allSettled(fetched.map((f) => (f.status === 'fulfilled' ? this.embedder.prepareImage(f.value.bytes) : Promise.reject(f.reason))));
    const t2 = performance.now();
    const ok: { msg: JsMsg; meta: ImageMeta; image: PreparedImage }[] = [];
    todo.forEach((t, i) => {
      const f = fetched[i]!;
      const p = prepared[i]!;
      if (f.status === 'rejected') {
        const code = (f.reason as { code?: string }).code;
        const missing = code === 'NoSuchKey' || code === 'NotFound';
        // Missing for good after a few tries (deleted from the bucket); anything else is retried later.
        if (missing && (t.msg.info.deliveryCount ?? 1) >= 5) {
          this.log.error({ key: t.meta.key }, 'indexer: image not in storage after 5 deliveries; dropping the event');
          this.stats.failed++;
          this.settle(t.msg, 'term');
        } else {
          this.log.warn({ key: t.meta.key, err: String(f.reason) }, 'indexer: image fetch failed, will retry');
          this.settle(t.msg, { nakMs: 2_000 });
        }
      } else if (p.status === 'rejected') {
        this.log.error({ key: t.meta.key, err: String(p.reason) }, 'indexer: image cannot be decoded; dropping the event');
        this.stats.failed++;
        this.settle(t.msg, 'term');
      } else ok.push({ ...t, meta: { ...t.meta, storedAt: f.value.lastModified ?? '' }, image: p.value });
    });
    if (!ok.length) return;
    let vectors: Float32Array[];
    try {
      vectors = await this.embedder.embedPrepared(ok.map((o) => o.image));
    } catch (err) {
      this.log.error({ err: String(err), n: ok.length }, 'indexer: embedding failed, will retry');
      for (const o of ok) this.settle(o.msg, { nakMs: 5_000 });
      return;
    }
    const t3 = performance.now();
    this.fault('after-embed');
    let ids: number[];
    try {
      ids = this.store.store(ok.map((o, i) => ({ meta: o.meta, vector: vectors[i]! })));
    } catch (err) {
      // Not stored (e.g. disk full): not acked either, so the events come back.
      this.log.error({ err: String(err), n: ok.length }, 'indexer: storing a batch failed, will retry');
      for (const o of ok) this.settle(o.msg, { nakMs: 5_000 });
      return;
    }
    const t4 = performance.now();
    this.fault('after-store');
    for (const o of ok) this.settle(o.msg, 'ack');
    this.stats.indexed += ok.length;
    this.stats.batches++;
    const times = this.stats.times;
    times.fetchMs += t1 - t0;
    times.decodeMs += t2 - t1;
    times.embedMs += t3 - t2;
    times.storeMs += t4 - t3;
    this.log.debug({ n: ok.length, total: this.store.index.size }, 'indexed batch');
    await this.scoreAesthetic(ids);
  }

  /** After the ack: a score is derived data, so a failure is logged and the backfill (or the next ranking) redoes it. */
  private async scoreAesthetic(ids: number[]): Promise<void> {
    if (!this.aesthetic) return;
    try {
      await this.aesthetic.scoreIds(ids);
    } catch (err) {
      this.log.warn({ err: String(err), n: ids.length }, 'indexer: aesthetic scoring failed; the backfill will retry');
    }
  }

  /** Terminates an event that can never be indexed: malformed, or naming another image's key. */
  private refuse(msg: JsMsg, err: unknown, what: string): void {
    if (err instanceof KeyMismatchError) {
      this.log.warn({ seq: msg.seq, subject: msg.subject, err: err.message }, 'indexer: event ignored, its key is not its renderKey\'s');
      this.stats.refused++;
    } else {
      this.log.error({ seq: msg.seq, err: String(err) }, what);
      this.stats.failed++;
    }
    this.settle(msg, 'term');
  }

  /**
   * Records upscales as variants of their original; no embedding (it would
   * only duplicate the original's result). Only an event that can never
   * succeed is terminated; a failed write (database busy, disk full) is put
   * back with a growing delay.
   */
  async processUpscaled(batch: JsMsg[]): Promise<void> {
    for (const msg of batch) {
      let variant: ReturnType<typeof variantFromEvent>;
      try {
        variant = variantFromEvent(decodeJson<Partial<ImageUpscaledEvent>>(msg.data));
      } catch (err) {
        this.refuse(msg, err, 'indexer: malformed upscaled event dropped');
        continue;
      }
      try {
        this.store.catalog.addVariant(variant);
      } catch (err) {
        const delay = retryDelayMs(msg.info.deliveryCount);
        this.log.warn({ key: variant.key, err: String(err), retryMs: delay }, 'indexer: storing an upscale failed, will retry');
        this.stats.retried++;
        this.settle(msg, { nakMs: delay });
        continue;
      }
      this.stats.variants++;
      this.settle(msg, 'ack');
    }
  }
}

/** The catalog's view of a rendered-image event; throws on events that cannot be indexed. */
export function metaFromEvent(e: ImageRenderedEvent): ImageMeta {
  if (!e || typeof e.renderKey !== 'string' || !e.renderKey || typeof e.key !== 'string') throw new Error('missing renderKey or key');
  if (keyPrefix(e.key) !== 'images') throw new Error(`not an image key: ${e.key}`);
  assertSafeKey(e.key);
  const renderKey = assertRenderKey(e.renderKey);
  if (e.key !== imageKey(renderKey)) throw new KeyMismatchError(`key ${e.key} is not ${imageKey(renderKey)}, the image of renderKey ${renderKey}`);
  return {
    renderKey,
    key: e.key,
    sweepId: String(e.sweepId ?? ''),
    jobId: String(e.jobId ?? ''),
    prompt: String(e.prompt ?? ''),
    seed: Number.isFinite(e.seed) ? e.seed : 0,
    params: e.params && typeof e.params === 'object' ? e.params : {},
    backend: String(e.backend ?? ''),
    renderModel: String(e.model ?? ''),
    node: String(e.node ?? ''),
    createdAt: e.createdAt && !Number.isNaN(Date.parse(e.createdAt)) ? e.createdAt : new Date().toISOString(),
    storedAt: '',
    source: 'event',
  };
}

/**
 * The original of an upscale: the source key's renderKey when given
 * (images/RK.png), else the event's. Checked field by field: it comes off the wire.
 */
export function variantFromEvent(e: Partial<ImageUpscaledEvent>): { key: string; render_key: string; source_key: string; model: string; created_at: string } {
  if (!e || typeof e.key !== 'string' || keyPrefix(e.key) !== 'upscaled') throw new Error('missing or wrong upscaled key');
  assertSafeKey(e.key);
  const fromSource = typeof e.sourceKey === 'string' ? renderKeyOf(e.sourceKey, 'images') : undefined;
  const renderKey = fromSource ?? e.renderKey;
  if (!renderKey) throw new Error('no renderKey for the original');
  // The upscale of RK is upscaled/RK.png (the gpu-node's upscaledKey): anything else would attach one image's upscale to another.
  if (e.key !== upscaledKey(assertRenderKey(renderKey))) throw new KeyMismatchError(`key ${e.key} is not ${upscaledKey(renderKey)}, the upscale of ${renderKey}`);
  return {
    key: e.key,
    render_key: renderKey,
    source_key: e.sourceKey ?? imageKey(renderKey),
    model: String(e.model ?? ''),
    created_at: e.createdAt && !Number.isNaN(Date.parse(e.createdAt)) ? e.createdAt : new Date().toISOString(),
  };
}
