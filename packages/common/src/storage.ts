/**
 * The S3 side of Nightshift through the `minio` client. Every key is checked
 * against the layout in DESIGN.md so user-derived text can never address an
 * object outside the known prefixes of the bucket.
 */
import { Client } from 'minio';

export const PREFIXES = ['images', 'thumbs', 'previews', 'upscaled'] as const;
export type Prefix = (typeof PREFIXES)[number];

const KEY_RE = new RegExp(`^(${PREFIXES.join('|')})/[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$`);

export function assertSafeKey(key: string): string {
  if (!KEY_RE.test(key) || key.includes('..')) throw new Error(`refusing object key ${JSON.stringify(key)}: not under ${PREFIXES.join('/, ')}/`);
  return key;
}

export const imageKey = (renderKey: string) => assertSafeKey(`images/${renderKey}.png`);
export const thumbKey = (renderKey: string) => assertSafeKey(`thumbs/${renderKey}.webp`);
export const previewKey = (jobId: string) => assertSafeKey(`previews/${jobId}.webp`);
export const upscaledKey = (renderKey: string) => assertSafeKey(`upscaled/${renderKey}.png`);

export interface StorageOptions {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** Base URL clients use to fetch objects; defaults to endpoint/bucket. */
  publicUrl?: string | undefined;
}

export class Storage {
  readonly client: Client;
  readonly bucket: string;
  private readonly publicBase: string;

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
    });
    this.bucket = opts.bucket;
    this.publicBase = (opts.publicUrl ?? `${opts.endpoint.replace(/\/$/, '')}/${opts.bucket}`).replace(/\/$/, '');
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
    for (const [k, v] of Object.entries(meta)) headers[`X-Amz-Meta-${k}`] = v;
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

  /** URL a browser can load; objects are served by the coordinator's /files proxy when the bucket is private. */
  url(key: string): string {
    return `${this.publicBase}/${assertSafeKey(key)}`;
  }
}
