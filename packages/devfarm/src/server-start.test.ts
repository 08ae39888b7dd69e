/**
 * An s3rver or nats-server that never answers its start-up probe is stopped,
 * and the error carries what it printed: left running, it kept a failed test
 * file alive until the runner's 10-minute timeout (a CI run where s3rver did
 * not answer within 20 s). Each probe here asks a port where nothing listens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startS3Server } from './s3-server.js';
import { startNatsServer } from './nats-server.js';
import { tempDir } from './tmp.js';

/** Whether something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(true));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
  });
}

type Start = (dir: string, opts: { port: number; probe: { host: string; port: number }; startTimeoutMs: number }) => Promise<unknown>;

async function neverAnswered(name: string, start: Start, printed: RegExp): Promise<void> {
  const tmp = tempDir();
  try {
    const port = await freePort();
    const nowhere = await freePort();
    await assert.rejects(start(join(tmp.dir, name), { port, probe: { host: '127.0.0.1', port: nowhere }, startTimeoutMs: 3_000 }), (err: Error) => {
      assert.match(err.message, new RegExp(`timed out after 3000 ms waiting for ${name} on ${port}`));
      assert.match(err.message, printed);
      return true;
    });
    assert.equal(await listening(port), false, `${name} is gone`);
  } finally {
    tmp.cleanup();
  }
}

test('an s3rver that never answers its probe is stopped, and the error says what it printed', async () => {
  await neverAnswered('s3rver', startS3Server, /s3rver printed: .*s3rver listening on 127\.0\.0\.1:\d+/s);
});

test('a nats-server that never answers its probe is stopped, and the error says what it printed', async () => {
  await neverAnswered('nats-server', startNatsServer, /nats-server printed: .*Server is ready/s);
});
