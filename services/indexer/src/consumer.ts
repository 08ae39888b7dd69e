/**
 * The durable JetStream consumer: pulls rendered-image events in batches,
 * fetches each image from S3, embeds the batch, stores vectors and metadata,
 * and only then acks. Pull batches bound the work in flight, so a burst of
 * events waits in the stream instead of in memory.
 */
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { decodeJson, STREAM, SUBJECTS, type Bus, type ImageRenderedEvent, type Logger, type Storage } from '@nightshift/common';
import type { Catalog } from './catalog.js';
import type { FlatIndex } from './flat-index.js';
import type { LoadedModel } from './model.js';

export const CONSUMER = 'indexer';

export interface ConsumerOptions {
  batchSize: number;
  /** How long one pull waits for a full batch. */
  expiresMs: number;
}

export class IndexConsumer {
  private stopped = false;
  private loop: Promise<void> | undefined;
  indexed = 0;

  constructor(
    private readonly bus: Bus,
    private readonly storage: Pick<Storage, 'get'>,
    private readonly catalog: Catalog,
    private readonly index: FlatIndex,
    private readonly model: LoadedModel,
    private readonly log: Logger,
    private readonly opts: ConsumerOptions = { batchSize: 32, expiresMs: 1_000 },
  ) {}

  async start(): Promise<void> {
    try {
      await this.bus.jsm.consumers.info(STREAM, CONSUMER);
    } catch {
      await this.bus.jsm.consumers.add(STREAM, {
        durable_name: CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: SUBJECTS.imageRendered,
        ack_wait: 60 * 1_000_000_000,
        max_ack_pending: 1_000,
      });
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const consumer = await this.bus.js.consumers.get(STREAM, CONSUMER);
        const iter = await consumer.fetch({ max_messages: this.opts.batchSize, expires: this.opts.expiresMs });
        const batch: JsMsg[] = [];
        for await (const m of iter) batch.push(m);
        if (batch.length) await this.process(batch);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.log.warn({ err: String(err), failures }, 'indexer: pull failed, retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** Math.min(failures, 5))));
      }
    }
  }

  /** Embeds and stores a batch, then acks it. Unparseable events are terminated, not retried forever. */
  async process(batch: JsMsg[]): Promise<void> {
    const good: { msg: JsMsg; event: ImageRenderedEvent; bytes: Buffer }[] = [];
    for (const msg of batch) {
      let event: ImageRenderedEvent;
      try {
        event = decodeJson<ImageRenderedEvent>(msg.data);
        if (!event.renderKey || !event.key) throw new Error('missing renderKey or key');
      } catch (err) {
        this.log.error({ seq: msg.seq, err: String(err) }, 'indexer: malformed event dropped');
        msg.term();
        continue;
      }
      good.push({ msg, event, bytes: Buffer.alloc(0) });
    }
    // An image that cannot be fetched is redelivered later (nak with delay); the rest go on.
    const fetched = await Promise.allSettled(good.map(async (g) => (g.bytes = await this.storage.get(g.event.key))));
    fetched.forEach((r, i) => {
      if (r.status === 'rejected') {
        this.log.warn({ key: good[i]!.event.key, err: String(r.reason) }, 'indexer: image fetch failed, will retry');
        good[i]!.msg.nak(2_000);
      }
    });
    const ok = new Set(good.filter((_, i) => fetched[i]!.status === 'fulfilled'));
    good.splice(0, good.length, ...good.filter((g) => ok.has(g)));
    if (!good.length) return;
    const vectors = await this.model.embedder.embedImages(good.map((g) => g.bytes));
    this.catalog.upsert(good.map((g, i) => ({ event: g.event, model: this.model.id, vector: vectors[i]! })));
    good.forEach((g, i) => this.index.upsert(g.event.renderKey, vectors[i]!));
    for (const g of good) g.msg.ack();
    this.indexed += good.length;
    this.log.debug({ n: good.length, total: this.index.size }, 'indexed batch');
  }
}
