/**
 * NATS JetStream: the NIGHTSHIFT stream and the event subjects (DESIGN.md
 * "Events"). Payloads are JSON so any NATS client can read them.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
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

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * Connects to NATS and keeps reconnecting forever. With `waitOnFirstConnect`
 * the promise also waits out a server that is down at start, so a service
 * can start before NATS does and simply hold its events until then.
 */
export async function connectBus(servers: string, name: string): Promise<Bus> {
  const nc = await connect({ servers, name, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true });
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
