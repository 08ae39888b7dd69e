/**
 * gRPC over mTLS: an enrolled node renders through a coordinator that
 * demands client certificates, SweepService answers TLS clients only, and
 * node tokens are still checked on top of TLS. The certificates are made
 * with the openssl CLI, so this file skips without it; the token, metrics
 * and log checks that need no certificates are in secure-farm.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, SweepService } from '@nightshift/proto';
import { grpcClientCredentials, loadConfig, type Config } from '@nightshift/common';
import { makeTestCerts, opensslAvailable, tempDir, waitFor, type TestCerts } from '@nightshift/devfarm';
import { startSecureFarm, TOKEN_A, WRONG, type SecureFarm } from './secure-farm-harness.js';

const skip = opensslAvailable() ? false : 'the openssl CLI is not installed (apt-get install openssl): no certificates for the mTLS checks';

describe('secure farm over mTLS', { skip, timeout: 180_000 }, () => {
  const tmp = tempDir('nightshift-secure-tls-');
  let certs: TestCerts;
  let f: SecureFarm;

  const clientTls = (over: Record<string, string> = {}): Config =>
    loadConfig({ NIGHTSHIFT_TLS_CA: certs.ca, NIGHTSHIFT_TLS_SERVER_NAME: 'localhost', NIGHTSHIFT_TLS_CLIENT_CERT: certs.clientCert, NIGHTSHIFT_TLS_CLIENT_KEY: certs.clientKey, ...over });

  const tlsOf = (c: Config): [grpc.ChannelCredentials, grpc.ChannelOptions] => {
    const { credentials, options } = grpcClientCredentials(c);
    return [credentials, options];
  };

  before(async () => {
    certs = makeTestCerts(join(tmp.dir, 'certs'), ['localhost', '127.0.0.1']);
    f = await startSecureFarm(tmp.dir, certs);
  });

  after(async () => {
    await f?.stop();
    tmp.cleanup();
  });

  test('an enrolled node renders over mTLS, and SweepService is served over TLS only', async () => {
    const a = await f.node('node-a', { NIGHTSHIFT_NODE_TOKEN: TOKEN_A });
    await waitFor('node-a registered', () => f.coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const { credentials, options } = grpcClientCredentials(clientTls());
    const client = createClient(SweepService, f.grpcAddress, credentials, options);
    try {
      const { id, jobs } = await client.submitSweep({ specJson: JSON.stringify({ prompts: ['a red circle'], seeds: { count: 4 }, params: { width: 64, height: 64, steps: 2 } }) });
      assert.equal(jobs, 4);
      const done = await f.sweepDone(id);
      assert.equal(done.counts.done, 4);
      assert.equal((await client.getSweep({ id })).sweep?.status, 'done');
    } finally {
      client.close();
    }
    assert.ok(f.coordLog.has('node registered', (l) => l.node === 'node-a'));
    assert.ok(a.connection.connected);

    // Without TLS, with a CA that did not sign the server, or without a client certificate: no call gets through.
    const attempts: [string, grpc.ChannelCredentials, grpc.ChannelOptions][] = [
      ['plaintext', grpc.credentials.createInsecure(), {}],
      ['wrong CA', ...tlsOf(clientTls({ NIGHTSHIFT_TLS_CA: certs.otherCa }))],
      ['no client certificate', ...tlsOf(loadConfig({ NIGHTSHIFT_TLS_CA: certs.ca, NIGHTSHIFT_TLS_SERVER_NAME: 'localhost' }))],
    ];
    for (const [what, creds, opts] of attempts) {
      const c = createClient(SweepService, f.grpcAddress, creds, opts);
      try {
        await assert.rejects(c.listSweeps({}, new grpc.Metadata(), { deadline: Date.now() + 5_000 }), (err: grpc.ServiceError) => {
          if (process.env.DEBUG_TLS) console.log(what, err.code, err.details);
          return err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED;
        }, what);
      } finally {
        c.close();
      }
    }
  });

  test('a client certificate is not enough: a wrong token is still refused', async () => {
    const w = await f.node('node-w', { NIGHTSHIFT_NODE_TOKEN: WRONG });
    await waitFor('node-w refused', () => f.coordLog.has('node refused: bad node token', (l) => l.node === 'node-w' && l.reason === 'unknown or revoked token'));
    assert.equal(w.connection.connected, false);
    assert.ok(!f.coordinator.deps.hub.connectedNodeIds().includes('node-w'));
    assert.ok(f.nodeLogs.get('node-w')!.has('coordinator refused this node', (l) => /node token refused \(unknown or revoked token\)/.test(String(l.details))));
  });

  test('no token value appears in any log, on either side', () => {
    assert.ok(f.coordLog.lines.length > 5 && f.nodeLogs.size >= 2);
    f.assertNoTokenLogged();
  });
});
