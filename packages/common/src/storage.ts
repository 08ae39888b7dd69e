/**
 * The S3 side of Nightshift through the `minio` client. Every key is checked
 * against the layout (object-keys.ts) so user-derived text can never address
 * an object outside the known prefixes of the bucket.
 */
import http from 'node:http';
import https from 'node:https';
import { Client } from 'minio';
import type { Config } from './config.js';
import { assertSafeKey, type Prefix } from './object-keys.js';
import { USER_META_PREFIX } from './object-meta.js';

export interface StorageOptions {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** STORAGE_SOCKET_IDLE_MS unless told (tests of a stalled server). */
  socketIdleMs?: number;
}

/** The bucket the NIGHTSHIFT_S3_* settings name. */
export function storageFromConfig(config: Pick<Config, 'NIGHTSHIFT_S3_ENDPOINT' | 'NIGHTSHIFT_S3_ACCESS_KEY' | 'NIGHTSHIFT_S3_SECRET_KEY' | 'NIGHTSHIFT_S3_BUCKET'>): Storage {
  return new Storage({
    endpoint: config.NIGHTSHIFT_S3_ENDPOINT,
    accessKey: config.NIGHTSHIFT_S3_ACCESS_KEY,
    secretKey: config.NIGHTSHIFT_S3_SECRET_KEY,
    bucket: config.NIGHTSHIFT_S3_BUCKET,
  });
}

/**
 * Connections one Storage keeps open to S3 at most. Node's global agent keeps
 * up to 256 idle and opens a new one for every request beyond them: a
 * coordinator checking 2,000 results a second opened a connection for 4
 * requests in 10 (1,695 for 4,000 HEADs), and it and the S3 server spent 1.6× and
 * 1.4× the CPU (bench/storage-keepalive.ts). Requests beyond the cap wait for a free one.
 */
export const STORAGE_MAX_SOCKETS = 32;
/**
 * A connection S3 leaves silent this long is destroyed, failing its request
 * (callers retry): a stalled server or a half-open connection after a
 * failover must not hold one of the few sockets, and every request queued
 * behind it, for the minutes TCP takes to give up.
 */
export const STORAGE_SOCKET_IDLE_MS = 30_000;

/** Kept-alive connections to S3, at most STORAGE_MAX_SOCKETS, each destroyed after `idleMs` of silence. */
function storageAgent(secure: boolean, idleMs: number): http.Agent {
  const agent = new (secure ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: STORAGE_MAX_SOCKETS, timeout: idleMs });
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (...args: Parameters<typeof create>) => {
    const socket = create(...args);
    socket?.on('timeout', () => socket.destroy(new Error(`S3 connection silent for ${idleMs} ms`)));
    return socket;
  };
  return agent;
}

export class Storage {
  readonly client: Client;
  readonly bucket: string;

  constructor(opts: StorageOptions) {
    const url = new URL(opts.endpoint);
    this.client = new Client({
      endPoint: url.hostname,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      useSSL: url.protocol === 'https:',
      accessKey: opts.accessKey,
      secretKey: opts.secretKey,
      pathStyle: true,
      region: 'us-east-1',
      transportAgent: storageAgent(url.protocol === 'https:', opts.socketIdleMs ?? STORAGE_SOCKET_IDLE_MS),
    });
    this.bucket = opts.bucket;
  }

  async ensureBucket(): Promise<void> {
    if (!(await this.client.bucketExists(this.bucket))) {
      try {
        await this.client.makeBucket(this.bucket, 'us-east-1');
      } catch (err) {
        // Another process may have created it between the check and the call.
        if (!(await this.client.bucketExists(this.bucket))) throw err;
      }
    }
  }

  async put(key: string, body: Buffer, contentType: string, meta: Record<string, string> = {}): Promise<void> {
    const headers: Record<string, string> = { 'Content-Type': contentType };
    for (const [k, v] of Object.entries(meta)) headers[`${USER_META_PREFIX}${k}`] = v;
    await this.client.putObject(this.bucket, assertSafeKey(key), body, body.length, headers);
  }

  async get(key: string): Promise<Buffer> {
    const stream = await this.client.getObject(this.bucket, assertSafeKey(key));
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.statObject(this.bucket, assertSafeKey(key));
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'NotFound' || code === 'NoSuchKey') return false;
      throw err;
    }
  }

  async list(prefix: Prefix): Promise<string[]> {
    const keys: string[] = [];
    const stream = this.client.listObjectsV2(this.bucket, `${prefix}/`, true);
    for await (const item of stream) if ((item as { name?: string }).name) keys.push((item as { name: string }).name);
    return keys;
  }
}
