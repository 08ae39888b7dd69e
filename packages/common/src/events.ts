/**
 * NATS JetStream: the NIGHTSHIFT stream and the event subjects (docs/design.md
 * "Events"). Payloads are JSON so any NATS client can read them.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { natsAuth, natsAuthOptions, type NatsAuth } from './bus-auth.js';
import { loadConfig, type Config } from './config.js';
import { sleep } from './sleep.js';

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
 * while NATS has never been reachable. Credentials default to the
 * configuration's (NIGHTSHIFT_NATS_USER/_PASSWORD or NIGHTSHIFT_NATS_CREDS),
 * so every service authenticates without passing them through; a refused
 * login is retried like an absent server (the server's config may be fixed).
 */
export async function connectBus(servers: string, name: string, signal?: AbortSignal, auth: NatsAuth = natsAuth(loadConfig())): Promise<Bus> {
  const credentials = natsAuthOptions(auth);
  let nc: NatsConnection | undefined;
  for (let attempt = 0; !nc; attempt++) {
    try {
      // noAsyncTraces: every JetStream publish is a request, and its async trace an Error made (a stack captured) per event:
      // 1.5 % of the coordinator's CPU at 1,000 nodes. A failed request still says what failed.
      nc = await connect({ servers, name, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true, ...credentials });
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

/** What the stream may hold before JetStream drops its oldest events. */
export interface StreamLimits {
  /** 0: no age limit. */
  maxAgeHours: number;
  /** 0: no size limit. */
  maxBytes: number;
}

export const streamLimits = (c: Pick<Config, 'NIGHTSHIFT_STREAM_MAX_AGE_HOURS' | 'NIGHTSHIFT_STREAM_MAX_BYTES'>): StreamLimits => ({
  maxAgeHours: c.NIGHTSHIFT_STREAM_MAX_AGE_HOURS,
  maxBytes: c.NIGHTSHIFT_STREAM_MAX_BYTES,
});

const NS_PER_HOUR = 3_600 * 1_000_000_000;
/** Ten minutes of Nats-Msg-Id dedup (in nanoseconds), never longer than the events are kept. */
const DEDUP_WINDOW_NS = 600 * 1_000_000_000;

/** The stream settings `limits` stand for, in JetStream's units (nanoseconds, -1 for no size limit). */
export function streamLimitConfig(limits: StreamLimits): { max_age: number; max_bytes: number; duplicate_window: number } {
  const maxAge = Math.round(limits.maxAgeHours * NS_PER_HOUR);
  return { max_age: maxAge, max_bytes: limits.maxBytes > 0 ? limits.maxBytes : -1, duplicate_window: maxAge > 0 ? Math.min(DEDUP_WINDOW_NS, maxAge) : DEDUP_WINDOW_NS };
}

/**
 * Creates the stream if missing, with its age and size limits, and brings an
 * existing stream (say, one made before there were limits) to them; safe to
 * call from every service at start. Limits default to the configuration's.
 */
export async function ensureStream(jsm: JetStreamManager, limits: StreamLimits = streamLimits(loadConfig())): Promise<void> {
  const wanted = streamLimitConfig(limits);
  let info;
  try {
    info = await jsm.streams.info(STREAM);
  } catch {
    try {
      await jsm.streams.add({ name: STREAM, subjects: ['nightshift.>'], ...wanted });
      return;
    } catch (err) {
      if (!String(err).includes('already in use')) throw err;
      info = await jsm.streams.info(STREAM);
    }
  }
  const c = info.config;
  if (c.max_age !== wanted.max_age || c.max_bytes !== wanted.max_bytes || c.duplicate_window !== wanted.duplicate_window) {
    await jsm.streams.update(STREAM, { ...c, ...wanted });
  }
}

export const encodeJson = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
export const decodeJson = <T>(data: Uint8Array): T => JSON.parse(new TextDecoder().decode(data)) as T;
