/**
 * GET /files/:prefix/:name — object bytes from S3 for browsers and the CLI,
 * so the bucket can stay private. Keys are checked against the layout.
 */
import { Hono } from 'hono';
import { assertSafeKey } from './object-keys.js';
import type { Storage } from './storage.js';

const CONTENT_TYPES: Record<string, string> = { png: 'image/png', webp: 'image/webp' };

export function filesRoute(storage: Pick<Storage, 'get'>): Hono {
  const app = new Hono();
  app.get('/:prefix/:name', async (c) => {
    let key: string;
    try {
      key = assertSafeKey(`${c.req.param('prefix')}/${c.req.param('name')}`);
    } catch {
      return c.json({ error: 'invalid object key' }, 400);
    }
    let body: Buffer;
    try {
      body = await storage.get(key);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'NoSuchKey' || code === 'NotFound') return c.json({ error: 'not found' }, 404);
      return c.json({ error: 'storage unavailable' }, 503);
    }
    const ext = key.split('.').pop() ?? '';
    return c.body(new Uint8Array(body), 200, { 'Content-Type': CONTENT_TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'public, max-age=3600' });
  });
  return app;
}
