/**
 * Node enrolment, gRPC TLS and operability, over a coordinator that serves
 * mTLS with tokens from an env list and a hashed tokens file (certificates
 * made by the test with openssl). nats-server and s3rver run as processes;
 * the coordinator and the gpu-nodes run in this process with their logs
 * captured, so the test can read exactly what each one logged.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, SweepService } from '@nightshift/proto';
import { createLogger, grpcClientCredentials, loadConfig, type Config } from '@nightshift/common';
import { startCoordinator, type RunningCoordinator } from '@nightshift/coordinator';
import { startNode, type RunningNode } from '@nightshift/gpu-node';
import { makeTestCerts, opensslAvailable, startNatsServer, startS3Server, tempDir, waitFor, type NatsServer, type S3Server, type TestCerts } from '@nightshift/devfarm';

const TOKEN_A = 'tok-A-7f3e9c1d2b4a6e8f0a1b2c3d';
const TOKEN_B = 'tok-B-0c9d8e7f6a5b4c3d2e1f0a9b';
const TOKEN_ENV = 'tok-ENV-5a4b3c2d1e0f9a8b7c6d';
const WRONG = 'tok-WRONG-1122334455667788';
const SECRETS = [TOKEN_A, TOKEN_B, TOKEN_ENV, WRONG];

const skip = opensslAvailable() ? false : 'the openssl CLI is not installed (apt-get install openssl)';

class Captured {
  readonly lines: string[] = [];
  write(s: string) {
    this.lines.push(...s.split('\n').filter(Boolean));
  }
  has(msg: string, extra: (l: Record<string, unknown>) => boolean = () => true): boolean {
    return this.lines.some((line) => {
      const l = JSON.parse(line) as Record<string, unknown>;
      return l.msg === msg && extra(l);
    });
  }
}

describe('secure farm: mTLS, node tokens, metrics and health', { skip, timeout: 180_000 }, () => {
  const tmp = tempDir('nightshift-secure-');
  let certs: TestCerts;
  let nats: NatsServer;
  let s3: S3Server;
  let coordinator: RunningCoordinator;
  const coordLog = new Captured();
  const nodeLogs = new Map<string, Captured>();
  const nodes = new Map<string, RunningNode>();
  let base: Record<string, string>;
  let api: string;
  let grpcAddress: string;
  const tokensFile = join(tmp.dir, 'node-tokens');
  const tokenLine = (name: string, token: string) => `${name} sha256:${createHash('sha256').update(token).digest('hex')}\n`;

  const clientTls = (over: Record<string, string> = {}): Config =>
    loadConfig({ NIGHTSHIFT_TLS_CA: certs.ca, NIGHTSHIFT_TLS_SERVER_NAME: 'localhost', NIGHTSHIFT_TLS_CLIENT_CERT: certs.clientCert, NIGHTSHIFT_TLS_CLIENT_KEY: certs.clientKey, ...over });

  const tlsOf = (c: Config): [grpc.ChannelCredentials, grpc.ChannelOptions] => {
    const { credentials, options } = grpcClientCredentials(c);
    return [credentials, options];
  };

  async function node(id: string, env: Record<string, string | undefined>): Promise<RunningNode> {
    const log = new Captured();
    nodeLogs.set(id, log);
    const merged: Record<string, string> = { ...base, NIGHTSHIFT_NODE_ID: id, NIGHTSHIFT_DATA_DIR: join(tmp.dir, id) };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
    else merged[k] = v;
    const n = await startNode(loadConfig(merged), createLogger('gpu-node', 'info', log));
    nodes.set(id, n);
    return n;
  }

  async function sweepDone(id: string) {
    return waitFor(`sweep ${id} done`, async () => {
      const s = (await (await fetch(`${api}/api/sweeps/${id}`)).json()) as { status: string; counts: Record<string, number> };
      return s.status === 'done' ? s : undefined;
    }, 60_000, 100);
  }

  async function submit(seeds: number, prompt: string): Promise<string> {
    const res = await fetch(`${api}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompts: [prompt], seeds: { count: seeds }, params: { width: 64, height: 64, steps: 2 } }) });
    assert.equal(res.status, 201);
    return ((await res.json()) as { id: string }).id;
  }

  const metric = async (url: string, re: RegExp) => {
    const text = await (await fetch(url)).text();
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };

  before(async () => {
    certs = makeTestCerts(join(tmp.dir, 'certs'), ['localhost', '127.0.0.1']);
    writeFileSync(tokensFile, `# test enrolment\n${tokenLine('gpu-a', TOKEN_A)}${tokenLine('gpu-b', TOKEN_B)}`);
    [nats, s3] = await Promise.all([startNatsServer(join(tmp.dir, 'nats')), startS3Server(join(tmp.dir, 's3'))]);
    const config = loadConfig({
      NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'coordinator'),
      NIGHTSHIFT_NATS_URL: nats.url,
      NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
      NIGHTSHIFT_HTTP_PORT: '0',
      NIGHTSHIFT_GRPC_PORT: '0',
      NIGHTSHIFT_HEARTBEAT_MS: '300',
      NIGHTSHIFT_NODE_TOKENS: `${TOKEN_ENV},unused-token`,
      NIGHTSHIFT_NODE_TOKENS_FILE: tokensFile,
      NIGHTSHIFT_TLS_CERT: certs.serverCert,
      NIGHTSHIFT_TLS_KEY: certs.serverKey,
      NIGHTSHIFT_TLS_CLIENT_CA: certs.ca,
    });
    coordinator = await startCoordinator(config, createLogger('coordinator', 'info', coordLog));
    api = `http://127.0.0.1:${coordinator.httpPort}`;
    grpcAddress = `127.0.0.1:${coordinator.grpcPort}`;
    base = {
      NIGHTSHIFT_COORDINATOR: grpcAddress,
      NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
      NIGHTSHIFT_TLS_CA: certs.ca,
      // The address is an IP; the certificate is checked against this name (it holds both).
      NIGHTSHIFT_TLS_SERVER_NAME: 'localhost',
      NIGHTSHIFT_TLS_CLIENT_CERT: certs.clientCert,
      NIGHTSHIFT_TLS_CLIENT_KEY: certs.clientKey,
      NIGHTSHIFT_NODE_METRICS_PORT: '0',
    };
  });

  after(async () => {
    for (const n of nodes.values()) await n.stop();
    await coordinator?.stop();
    await Promise.all([nats?.stop(), s3?.stop()]);
    tmp.cleanup();
  });

  test('an enrolled node renders over mTLS, and SweepService is served over TLS only', async () => {
    const a = await node('node-a', { NIGHTSHIFT_NODE_TOKEN: TOKEN_A });
    await waitFor('node-a registered', () => coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const { credentials, options } = grpcClientCredentials(clientTls());
    const client = createClient(SweepService, grpcAddress, credentials, options);
    try {
      const { id, jobs } = await client.submitSweep({ specJson: JSON.stringify({ prompts: ['a red circle'], seeds: { count: 4 }, params: { width: 64, height: 64, steps: 2 } }) });
      assert.equal(jobs, 4);
      const done = await sweepDone(id);
      assert.equal(done.counts.done, 4);
      assert.equal((await client.getSweep({ id })).sweep?.status, 'done');
    } finally {
      client.close();
    }
    assert.ok(coordLog.has('node registered', (l) => l.node === 'node-a'));
    assert.ok(a.connection.connected);

    // Without TLS, with a CA that did not sign the server, or without a client certificate: no call gets through.
    const attempts: [string, grpc.ChannelCredentials, grpc.ChannelOptions][] = [
      ['plaintext', grpc.credentials.createInsecure(), {}],
      ['wrong CA', ...tlsOf(clientTls({ NIGHTSHIFT_TLS_CA: certs.otherCa }))],
      ['no client certificate', ...tlsOf(loadConfig({ NIGHTSHIFT_TLS_CA: certs.ca, NIGHTSHIFT_TLS_SERVER_NAME: 'localhost' }))],
    ];
    for (const [what, creds, opts] of attempts) {
      const c = createClient(SweepService, grpcAddress, creds, opts);
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

  test('/metrics, /healthz and /readyz on the coordinator and the gpu-node', async () => {
    const nodePort = nodes.get('node-a')!.metricsPort!;
    const nodeUrl = `http://127.0.0.1:${nodePort}`;
    assert.equal(await metric(`${api}/metrics`, /^nightshift_jobs\{[^}]*state="done"[^}]*\} (\d+)$/m), 4);
    assert.equal(await metric(`${api}/metrics`, /^nightshift_jobs\{[^}]*state="queued"[^}]*\} (\d+)$/m), 0);
    assert.ok((await metric(`${api}/metrics`, /^nightshift_leases_total\{[^}]*\} (\d+)$/m))! >= 4);
    assert.equal(await metric(`${api}/metrics`, /^nightshift_render_seconds_count\{[^}]*\} (\d+)$/m), 4);
    assert.equal(await metric(`${api}/metrics`, /^nightshift_nodes\{[^}]*status="online"[^}]*\} (\d+)$/m), 1);
    assert.ok((await metric(`${api}/metrics`, /^process_resident_memory_bytes\{[^}]*\} (\d+)$/m))! > 0);
    assert.equal(await metric(`${nodeUrl}/metrics`, /^nightshift_node_jobs_total\{[^}]*result="rendered"[^}]*\} (\d+)$/m), 4);
    assert.equal(await metric(`${nodeUrl}/metrics`, /^nightshift_node_connected\{[^}]*\} (\d+)$/m), 1);
    for (const url of [api, nodeUrl]) {
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 200, await ready.clone().text());
    }
    assert.deepEqual(((await (await fetch(`${api}/readyz`)).json()) as { checks: unknown }).checks, { sqlite: 'ok', nats: 'ok', s3: 'ok' });

    // A dependency away: not ready (with the reason), still healthy; back: ready again.
    await s3.stop();
    try {
      const r = await fetch(`${api}/readyz`);
      assert.equal(r.status, 503);
      assert.notEqual(((await r.json()) as { checks: { s3: string } }).checks.s3, 'ok');
      assert.equal((await fetch(`${nodeUrl}/readyz`)).status, 503);
      assert.equal((await fetch(`${api}/healthz`)).status, 200);
    } finally {
      await s3.start();
    }
    await waitFor('ready again', async () => (await fetch(`${api}/readyz`)).status === 200, 10_000);
  });

  test('a node restarted with the same NIGHTSHIFT_NODE_ID is recognised as the same node', async () => {
    type Nodes = { nodes: { id: string; status: string; jobsDone: number }[] };
    const before = ((await (await fetch(`${api}/api/nodes`)).json()) as Nodes).nodes;
    await nodes.get('node-a')!.stop();
    await waitFor('node-a offline', () => !coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const again = await node('node-a', { NIGHTSHIFT_NODE_TOKEN: TOKEN_A });
    await waitFor('node-a back', () => again.connection.connected && coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const now = ((await (await fetch(`${api}/api/nodes`)).json()) as Nodes).nodes;
    assert.equal(now.length, before.length, 'no second entry for the same node');
    const a = now.find((n) => n.id === 'node-a')!;
    assert.equal(a.status, 'online');
    assert.equal(a.jobsDone, before.find((n) => n.id === 'node-a')!.jobsDone, 'its history is kept');
  });

  test('a wrong or missing token is refused: the node never gets work, both sides log why', async () => {
    await nodes.get('node-a')!.stop();
    nodes.delete('node-a');
    await waitFor('node-a gone', () => !coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const w = await node('node-w', { NIGHTSHIFT_NODE_TOKEN: WRONG });
    const m = await node('node-m', { NIGHTSHIFT_NODE_TOKEN: undefined });
    const id = await submit(3, 'a blue square');
    await waitFor('both refusals logged', () => coordLog.has('node refused: bad node token', (l) => l.node === 'node-w') && coordLog.has('node refused: bad node token', (l) => l.node === 'node-m'));
    await new Promise((r) => setTimeout(r, 1_500));
    const s = (await (await fetch(`${api}/api/sweeps/${id}`)).json()) as { counts: Record<string, number> };
    assert.equal(s.counts.queued, 3, 'nothing was leased to the refused nodes');
    for (const n of [w, m]) {
      assert.equal(n.connection.connected, false);
      assert.deepEqual(n.worker.heldJobIds(), []);
    }
    assert.ok(coordLog.has('node refused: bad node token', (l) => l.node === 'node-w' && l.reason === 'unknown or revoked token'));
    assert.ok(coordLog.has('node refused: bad node token', (l) => l.node === 'node-m' && l.reason === 'missing token'));
    assert.ok(nodeLogs.get('node-w')!.has('coordinator refused this node', (l) => /node token refused \(unknown or revoked token\)/.test(String(l.details))));
    assert.ok(nodeLogs.get('node-m')!.has('coordinator refused this node', (l) => /missing token/.test(String(l.details))));
    assert.ok((await metric(`${api}/metrics`, /^nightshift_node_auth_refused_total\{[^}]*reason="unknown or revoked token"[^}]*\} (\d+)$/m))! >= 1);

    // The env-list token is enrolled too: that node takes the waiting sweep.
    await node('node-e', { NIGHTSHIFT_NODE_TOKEN: TOKEN_ENV });
    assert.equal((await sweepDone(id)).counts.done, 3);
    assert.deepEqual(w.worker.heldJobIds(), []);
    for (const n of ['node-w', 'node-m', 'node-e']) {
      await nodes.get(n)!.stop();
      nodes.delete(n);
    }
  });

  test('revoking a token in the file drops the connected node and refuses its return', async () => {
    const b = await node('node-b', { NIGHTSHIFT_NODE_TOKEN: TOKEN_B });
    await waitFor('node-b registered', () => b.connection.connected);
    writeFileSync(tokensFile, tokenLine('gpu-a', TOKEN_A));
    await waitFor('node-b dropped', () => coordLog.has('node token revoked: session closed', (l) => l.node === 'node-b' && l.tokenName === 'gpu-b'), 10_000);
    await waitFor('node-b refused on its return', () => coordLog.has('node refused: bad node token', (l) => l.node === 'node-b'), 10_000);
    assert.equal(b.connection.connected, false);
    assert.ok(!coordinator.deps.hub.connectedNodeIds().includes('node-b'));
  });

  test('no token value appears in any log, on either side', () => {
    assert.ok(coordLog.lines.length > 10 && nodeLogs.size >= 4);
    for (const [who, lines] of [['coordinator', coordLog.lines] as const, ...[...nodeLogs].map(([id, c]) => [id, c.lines] as const)]) {
      for (const secret of SECRETS) assert.ok(!lines.some((l) => l.includes(secret)), `${who} logged a token`);
    }
  });
});
