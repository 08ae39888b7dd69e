/**
 * An s3rver that never answers its start-up probe is stopped, and the error
 * carries what it printed: left running, it kept a failed test file alive
 * until the runner's 10-minute timeout (a CI run where s3rver did not answer
 * within 20 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startS3Server } from './s3-server.js';
import { tempDir } from './tmp.js';

/** Whether something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(true));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
  });
}

test('a start whose probe never gets an answer stops the server it started, and says what the server printed', async () => {
  const tmp = tempDir();
  try {
    const port = await freePort();
    // The server starts on `port`; the probe asks a port where nothing listens.
    const nowhere = await freePort();
    await assert.rejects(
      startS3Server(join(tmp.dir, 's3'), { port, probe: { host: '127.0.0.1', port: nowhere }, startTimeoutMs: 3_000 }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`timed out after 3000 ms waiting for s3rver on ${port}`));
        assert.match(err.message, new RegExp(`s3rver printed: .*s3rver listening on 127\\.0\\.0\\.1:${port}`, 's'));
        return true;
      },
    );
    assert.equal(await listening(port), false, 'the server is gone');
  } finally {
    tmp.cleanup();
  }
});
