/**
 * Re-indexing from S3, the source of truth:
 *  - `fromBucket`: rebuilds the whole index from the bucket alone. Lists
 *    `images/`, reads each PNG's A1111 `parameters` chunk (prompt, seed,
 *    size, steps…) and its object metadata (`sweep-id`, `render-key`,
 *    `job-id`, written by the gpu-node), embeds and stores it; lists
 *    `upscaled/` for variants; then prunes rows whose image is gone.
 *  - `reembedStale`: after a model change, re-embeds every row made by
 *    another model from its image in S3, in the background (search serves
 *    the already re-embedded part meanwhile).
 * Favorites are keyed by renderKey in their own table and survive both.
 */
import { existsSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { assertRenderKey, assertSafeKey, imageIdsOf, imageKey, parseA1111Parameters, readPngTextChunks, renderKeyOf, sleep, userMetaOf, type Logger, type Storage } from '@nightshift/common';
import type { ClipEmbedder } from '@nightshift/models';
import type { CatalogInfo, ImageMeta } from './catalog.js';
import type { IndexStore, StoredItem } from './store.js';

export interface ReindexStatus {
  running: boolean;
  kind?: 'bucket' | 'model';
  done: number;
  failed: number;
  pruned: number;
  variants: number;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

export interface ObjectWithMeta {
  bytes: Buffer;
  /** User metadata (object-meta.ts), keys lower-case without the prefix. */
  meta: Record<string, string>;
  lastModified: string | undefined;
}

type ReindexStorage = Pick<Storage, 'client' | 'bucket' | 'get'>;

/** GET an object with its user metadata (from the response headers: no second request). */
export async function getObjectWithMeta(storage: ReindexStorage, key: string): Promise<ObjectWithMeta> {
  const res = (await storage.client.getObject(storage.bucket, assertSafeKey(key))) as NodeJS.ReadableStream & { headers?: IncomingHttpHeaders };
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const lm = res.headers?.['last-modified'];
  return { bytes: Buffer.concat(chunks), meta: userMetaOf(res.headers), lastModified: typeof lm === 'string' ? new Date(lm).toISOString() : undefined };
}

/**
 * An upscale's object metadata and upscaler name, from its first 64 KiB only
 * (text chunks sit right after IHDR; upscales are large): the gpu-node's
 * A1111-style `postprocessing` chunk says "Postprocess upscaler: NAME".
 */
export async function upscaleHead(storage: ReindexStorage, key: string): Promise<{ meta: Record<string, string>; upscaler: string }> {
  const res = (await storage.client.getPartialObject(storage.bucket, assertSafeKey(key), 0, 65_536)) as NodeJS.ReadableStream & { headers?: IncomingHttpHeaders };
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return { meta: userMetaOf(res.headers), upscaler: upscalerOf(Buffer.concat(chunks)) };
}

/** The upscaler named in a (possibly truncated) PNG's `postprocessing` tEXt chunk, or ''. */
export function upscalerOf(png: Buffer): string {
  for (let off = 8; off + 12 <= png.length; ) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT' || off + 12 + len > png.length) break;
    if (type === 'tEXt') {
      const data = png.subarray(off + 8, off + 8 + len);
      const nul = data.indexOf(0);
      if (nul > 0 && data.toString('latin1', 0, nul) === 'postprocessing') {
        return /Postprocess upscaler: ([^,\n]+)/.exec(data.toString('latin1', nul + 1))?.[1]?.trim() ?? '';
      }
    }
    off += 12 + len;
  }
  return '';
}

const numberOr = (s: string | undefined): number | string | undefined => (s === undefined ? undefined : /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s);

/**
 * What the bucket alone says about a rendered image: prompt and settings from
 * the PNG's A1111 chunk, ids from the object metadata (renderKey falls back
 * to the file name). Throws when the PNG carries no parameters.
 */
export function metaFromObject(key: string, obj: Pick<ObjectWithMeta, 'bytes' | 'meta'>, createdAt: string, storedAt = createdAt): ImageMeta {
  const text = readPngTextChunks(obj.bytes).parameters;
  if (text === undefined) throw new Error(`${key}: no A1111 parameters chunk`);
  const parsed = parseA1111Parameters(text);
  const p = parsed.params;
  const params: Record<string, unknown> = {};
  const size = /^(\d+)x(\d+)$/.exec(p.Size ?? '');
  if (size) {
    params.width = Number(size[1]);
    params.height = Number(size[2]);
  }
  if (p.Steps !== undefined) params.steps = numberOr(p.Steps);
  if (p['CFG scale'] !== undefined) params.guidance = numberOr(p['CFG scale']);
  for (const [k, v] of Object.entries(p)) if (!['Size', 'Steps', 'CFG scale', 'Seed', 'Model', 'Backend', 'Sampler'].includes(k)) params[k] = numberOr(v);
  if (p.Sampler !== undefined) params.sampler = p.Sampler;
  const ids = imageIdsOf(obj.meta);
  const renderKey = ids.renderKey ?? renderKeyOf(key, 'images');
  if (!renderKey) throw new Error(`${key}: no render key`);
  return {
    renderKey: assertRenderKey(renderKey),
    key,
    sweepId: ids.sweepId ?? '',
    jobId: ids.jobId ?? '',
    prompt: parsed.prompt,
    seed: Number(p.Seed ?? 0) || 0,
    params,
    backend: p.Backend ?? '',
    renderModel: p.Model ?? '',
    node: '',
    createdAt,
    storedAt,
    source: 'bucket',
  };
}

export interface ReindexOptions {
  batchSize: number;
  concurrency: number;
  /** Test hook: `hold-reindex:FILE` holds a reindex from the bucket after its first batch until FILE exists (live events go on meanwhile). */
  fault?: string | undefined;
}

export class Reindexer {
  status: ReindexStatus = { running: false, done: 0, failed: 0, pruned: 0, variants: 0 };
  private current: Promise<void> | undefined;
  private cancelled = false;

  constructor(
    private readonly storage: ReindexStorage & Pick<Storage, 'list'>,
    private readonly store: IndexStore,
    private readonly embedder: ClipEmbedder,
    private readonly log: Logger,
    private readonly opts: ReindexOptions,
  ) {}

  get running(): boolean {
    return this.status.running;
  }

  /** Starts a job in the background; false when one is already running. */
  start(kind: 'bucket' | 'model', options: { prune?: boolean } = {}): boolean {
    if (this.status.running) return false;
    this.status = { running: true, kind, done: 0, failed: 0, pruned: 0, variants: 0, startedAt: new Date().toISOString() };
    const job = kind === 'bucket' ? this.fromBucket(options.prune ?? true) : this.reembedStale();
    this.current = job.then(
      () => {
        this.status = { ...this.status, running: false, finishedAt: new Date().toISOString() };
        this.log.info({ ...this.status }, `reindex (${kind}) finished`);
      },
      (err: unknown) => {
        this.status = { ...this.status, running: false, finishedAt: new Date().toISOString(), error: String(err) };
        this.log.error({ err: String(err) }, `reindex (${kind}) failed`);
      },
    );
    return true;
  }

  /** Resolves when the running job (if any) ends. */
  async wait(): Promise<ReindexStatus> {
    await this.current;
    return this.status;
  }

  async stop(): Promise<void> {
    this.cancelled = true;
    await this.current;
  }

  /** Embeds and stores one chunk of images; per-image failures are counted, not fatal. */
  private async indexChunk(items: { key: string; load: () => Promise<{ meta: ImageMeta; bytes: Buffer }> }[], gen?: number): Promise<void> {
    const loaded = await Promise.allSettled(items.map(async (it) => {
      const { meta, bytes } = await it.load();
      return { meta, image: await this.embedder.prepareImage(bytes) };
    }));
    const ok: { meta: ImageMeta; image: Awaited<ReturnType<ClipEmbedder['prepareImage']>> }[] = [];
    loaded.forEach((r, i) => {
      if (r.status === 'fulfilled') ok.push(r.value);
      else {
        this.status.failed++;
        this.log.warn({ key: items[i]!.key, err: String(r.reason) }, 'reindex: image skipped');
      }
    });
    if (!ok.length) return;
    const vectors = await this.embedder.embedPrepared(ok.map((o) => o.image));
    const stored: StoredItem[] = ok.map((o, i) => ({ meta: o.meta, vector: vectors[i]! }));
    this.store.store(stored, gen);
    this.status.done += stored.length;
  }

  /** Runs `work` over chunks from `source` with bounded concurrency (so memory stays bounded too). */
  private async pipeline<T>(source: AsyncIterable<T>, work: (chunk: T[]) => Promise<void>): Promise<void> {
    const running = new Set<Promise<void>>();
    let chunk: T[] = [];
    const launch = async (c: T[]) => {
      const p: Promise<void> = work(c).finally(() => running.delete(p));
      running.add(p);
      if (running.size >= this.opts.concurrency) await Promise.race(running);
    };
    for await (const item of source) {
      if (this.cancelled) break;
      chunk.push(item);
      if (chunk.length >= this.opts.batchSize) {
        await launch(chunk);
        chunk = [];
      }
    }
    if (chunk.length && !this.cancelled) await launch(chunk);
    await Promise.all(running);
  }

  private listing(prefix: 'images' | 'upscaled'): AsyncIterable<{ name: string; lastModified?: Date }> {
    return this.storage.client.listObjectsV2(this.storage.bucket, `${prefix}/`, true) as AsyncIterable<{ name: string; lastModified?: Date }>;
  }

  async fromBucket(prune: boolean): Promise<void> {
    const catalog = this.store.catalog;
    // Rows stored from now on, by this reindex or by live events, carry `gen`; prune spares them.
    const gen = catalog.gen + 1;
    catalog.setMeta('gen', String(gen));
    this.log.info({ gen, prune }, 'reindex from the bucket: started');
    let batches = 0;
    await this.pipeline(this.listing('images'), async (chunk) => {
      await this.indexChunk(
        chunk.filter((o) => renderKeyOf(o.name, 'images') !== undefined).map((o) => ({
          key: o.name,
          load: async () => {
            const obj = await getObjectWithMeta(this.storage, o.name);
            const created = o.lastModified ? new Date(o.lastModified).toISOString() : (obj.lastModified ?? new Date().toISOString());
            return { meta: metaFromObject(o.name, obj, created), bytes: obj.bytes };
          },
        })),
        gen,
      );
      if (++batches === 1) await this.hold();
    });
    if (this.cancelled) return;
    for await (const o of this.listing('upscaled')) {
      const fromName = renderKeyOf(o.name, 'upscaled');
      if (!fromName) continue;
      let head: { meta: Record<string, string>; upscaler: string } = { meta: {}, upscaler: '' };
      try {
        head = await upscaleHead(this.storage, o.name);
      } catch (err) {
        this.log.warn({ key: o.name, err: String(err) }, 'reindex: upscale metadata unreadable; linking it by its file name');
      }
      const renderKey = imageIdsOf(head.meta).renderKey ?? fromName;
      let sourceKey: string;
      try {
        sourceKey = imageKey(renderKey);
      } catch (err) {
        this.log.warn({ key: o.name, err: String(err) }, 'reindex: upscale names no usable original; skipped');
        continue;
      }
      catalog.addVariant({
        key: o.name,
        render_key: renderKey,
        source_key: sourceKey,
        model: head.upscaler,
        created_at: o.lastModified ? new Date(o.lastModified).toISOString() : new Date().toISOString(),
      });
      this.status.variants++;
    }
    if (prune && this.status.failed === 0) this.status.pruned = this.store.prune(gen);
    else if (prune) this.log.warn({ failed: this.status.failed }, 'reindex: some images failed, so nothing is pruned');
    this.store.checkPendingDuplicates();
    this.store.saveSnapshot(true);
  }

  /** The `hold-reindex:FILE` test hook. */
  private async hold(): Promise<void> {
    const file = this.opts.fault?.startsWith('hold-reindex:') ? this.opts.fault.slice('hold-reindex:'.length) : undefined;
    if (!file) return;
    this.log.warn({ fault: this.opts.fault }, 'reindex: fault injection, holding after the first batch');
    while (!existsSync(file) && !this.cancelled) await sleep(100);
  }

  async reembedStale(): Promise<void> {
    const model = this.store.model.id;
    const total = this.store.catalog.countStale(model);
    this.log.info({ stale: total, model }, 'model changed: re-embedding images from S3 in the background');
    const store = this.store;
    let lastId = 0;
    async function* staleRows(self: Reindexer): AsyncGenerator<CatalogInfo> {
      for (;;) {
        const rows = store.catalog.stale(model, 256, lastId);
        if (!rows.length || self.cancelled) return;
        for (const r of rows) yield r;
        lastId = rows[rows.length - 1]!.id;
      }
    }
    await this.pipeline(staleRows(this), (chunk) =>
      this.indexChunk(
        chunk.map((row) => ({
          key: row.key,
          load: async () => ({ meta: metaFromRow(row), bytes: await this.storage.get(row.key) }),
        })),
      ),
    );
    if (this.cancelled) return;
    store.checkPendingDuplicates();
    store.saveSnapshot(true);
  }
}

export function metaFromRow(r: CatalogInfo): ImageMeta {
  return {
    renderKey: r.render_key,
    key: r.key,
    sweepId: r.sweep_id,
    jobId: r.job_id,
    prompt: r.prompt,
    seed: r.seed,
    params: JSON.parse(r.params_json) as Record<string, unknown>,
    backend: r.backend,
    renderModel: r.render_model,
    node: r.node,
    createdAt: r.created_at,
    storedAt: r.stored_at,
    source: r.source === 'bucket' ? 'bucket' : 'event',
  };
}
