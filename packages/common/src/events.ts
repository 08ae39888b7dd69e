/**
 * NATS JetStream: the NIGHTSHIFT stream and the event subjects (docs/design.md
 * "Events"). Payloads are JSON so any NATS client can read them.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sleep } from './sleep.js';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';

export const STREAM = 'NIGHTSHIFT';
export const SUBJECTS = {
  imageRendered: 'nightshift.image.rendered',
  imageUpscaled: 'nightshift.image.upscaled',
  sweepCreated: 'nightshift.sweep.created',
  sweepDone: 'nightshift.sweep.done',
  sweepCancelled: 'nightshift.sweep.cancelled',
  nodeUp: 'nightshift.node.up',
  nodeDown: 'nightshift.node.down',
} as const;

export interface ImageRenderedEvent {
  renderKey: string;
  key: string;
  sweepId: string;
  jobId: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  backend: string;
  model: string;
  node: string;
  renderMs: number;
  createdAt: string;
}

/**
 * nightshift.image.upscaled: the upscale job's own fields (renderKey and key
 * name the upscale, `upscaled/RK.png`) plus the image it was made from.
 */
export interface ImageUpscaledEvent extends ImageRenderedEvent {
  /** The original image's key, `images/RK.png`. */
  sourceKey: string;
  /** Linear scale factor of the upscale. */
  scale: number;
}

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * Connects to NATS, retrying until it answers (a service may start before
 * NATS does and hold its events meanwhile), then keeps reconnecting forever.
 * `signal` ends the first-connect retries, so a service can stop cleanly
 * while NATS has never been reachable.
 */
export async function connectBus(servers: string, name: string, signal?: AbortSignal): Promise<Bus> {
  let nc: NatsConnection | undefined;
  for (let attempt = 0; !nc; attempt++) {
    try {
      nc = await connect({ servers, name, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    } catch (err) {
      if (signal?.aborted) throw err;
      await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)), signal);
      if (signal?.aborted) throw new Error(`stopped before NATS at ${servers} was reachable`, { cause: err });
    }
  }
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  return { nc, js, jsm };
}

/** Creates the stream if missing; safe to call from every service at start. */
export async function ensureStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.info(STREAM);
  } catch {
    try {
      // duplicate_window is in nanoseconds: ten minutes of Nats-Msg-Id dedup.
      await jsm.streams.add({ name: STREAM, subjects: ['nightshift.>'], duplicate_window: 600 * 1_000_000_000 });
    } catch (err) {
      if (!String(err).includes('already in use')) throw err;
    }
  }
}

export const encodeJson = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
export const decodeJson = <T>(data: Uint8Array): T => JSON.parse(new TextDecoder().decode(data)) as T;
