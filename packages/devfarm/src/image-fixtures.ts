/**
 * Rendered images without a farm, for the indexer's tests and benchmarks:
 * procedural images stored the way a gpu-node stores them (A1111
 * `parameters` chunk, S3 user metadata sweep-id/render-key/job-id) and the
 * events the coordinator publishes for them.
 */
import { createHash } from 'node:crypto';
import { addPngTextChunk, encodeJson, formatA1111Parameters, imageKey, imageObjectMeta, SUBJECTS, type Bus, type ImageRenderedEvent, type Storage } from '@nightshift/common';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';

export interface FixtureImage {
  event: ImageRenderedEvent;
  png: Buffer;
}

/** A render as the farm would produce it: deterministic PNG with its parameters chunk, and its event. */
export async function fixtureImage(o: { prompt: string; seed: number; sweepId?: string; size?: number; createdAt?: string; renderKey?: string }): Promise<FixtureImage> {
  // Loaded here, not at the top: @nightshift/models brings transformers.js and
  // onnxruntime, which every other user of this package would pay for at start-up.
  const { encodePng, renderProcedural } = await import('@nightshift/models');
  const size = o.size ?? 128;
  const params = { width: size, height: size, steps: 10 };
  const renderKey = o.renderKey ?? createHash('sha256').update(JSON.stringify([o.prompt, o.seed, params, o.sweepId ?? ''])).digest('hex').slice(0, 32);
  const img = renderProcedural(o.prompt, o.seed, size, size);
  const png = addPngTextChunk(
    await encodePng(img.data, size, size),
    'parameters',
    formatA1111Parameters({ prompt: o.prompt, seed: o.seed, width: size, height: size, steps: 10, model: PROCEDURAL_MODEL, backend: 'procedural' }),
  );
  const sweepId = o.sweepId ?? 'sweep-1';
  return {
    png,
    event: {
      renderKey,
      key: imageKey(renderKey),
      sweepId,
      jobId: `job-${renderKey.slice(0, 8)}`,
      prompt: o.prompt,
      seed: o.seed,
      params,
      backend: 'procedural',
      model: PROCEDURAL_MODEL,
      node: 'node-0',
      renderMs: 1,
      createdAt: o.createdAt ?? new Date().toISOString(),
    },
  };
}

/** Uploads the PNG with the gpu-node's object metadata. */
export async function putFixture(storage: Pick<Storage, 'put'>, f: FixtureImage): Promise<void> {
  await storage.put(f.event.key, f.png, 'image/png', imageObjectMeta(f.event));
}

/** Publishes the image.rendered event (Nats-Msg-Id = renderKey, like the coordinator's outbox). */
export async function publishRendered(bus: Bus, e: ImageRenderedEvent, opts: { dedupe?: boolean } = {}): Promise<void> {
  await bus.js.publish(SUBJECTS.imageRendered, encodeJson(e), opts.dedupe === false ? {} : { msgID: e.renderKey });
}

/** Runs `fn` over items with at most `n` at once. */
export async function eachLimit<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}
