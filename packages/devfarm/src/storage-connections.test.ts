/** Storage's connections to a real s3rver: a burst of requests reuses a bounded set of kept-alive connections (storage.ts, STORAGE_MAX_SOCKETS). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Storage, STORAGE_MAX_SOCKETS } from '@nightshift/common';
import { startS3Server } from './s3-server.js';
import { tempDir } from './tmp.js';

test('400 concurrent checks open at most STORAGE_MAX_SOCKETS connections, and later ones open none', { timeout: 120_000 }, async () => {
  const tmp = tempDir('nightshift-storage-connections-');
  const s3 = await startS3Server(join(tmp.dir, 's3'));
  try {
    const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    await storage.put('images/kept.png', Buffer.from('x'), 'image/png');
    const agent = (storage.client as unknown as { transportAgent: http.Agent }).transportAgent;
    let opened = 0;
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<typeof create>) => {
      opened++;
      return create(...args);
    };
    const burst = () => Promise.all(Array.from({ length: 400 }, () => storage.exists('images/kept.png')));
    assert.ok((await burst()).every(Boolean));
    assert.ok(opened >= 1 && opened <= STORAGE_MAX_SOCKETS, `opened ${opened}`);
    const afterFirst = opened;
    assert.ok((await burst()).every(Boolean));
    assert.equal(opened, afterFirst, 'the second burst reuses the kept connections');
    assert.equal(await storage.exists('images/absent.png'), false);
  } finally {
    await s3.kill();
    tmp.cleanup();
  }
});

test('a request to an S3 that accepts but never answers fails once its connection has been silent for the idle time (callers retry)', { timeout: 60_000 }, async () => {
  const stalled = http.createServer(() => {
    /* never answers */
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  try {
    const storage = new Storage({ endpoint: `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`, accessKey: 'a', secretKey: 'b', bucket: 'nightshift', socketIdleMs: 300 });
    await assert.rejects(storage.exists('images/stalled.png'), /silent for 300 ms/);
  } finally {
    stalled.closeAllConnections();
    stalled.close();
  }
});
