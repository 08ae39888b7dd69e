/**
 * The node's Connection over several coordinator addresses, against real
 * gRPC NodeService servers standing in for replicas (each records what it
 * is sent): a dead first address is passed over, a replica that dies hands
 * the node to the next one with the jobs it holds and its recent results,
 * backoff paces attempts when every address is down, and an address found
 * by looking a name up still checks the coordinator's certificate against
 * that name. The whole farm doing this is test/e2e/node-failover.test.ts.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { createLogger, grpcClientCredentials, grpcServerCredentials } from '@nightshift/common';
import { freePort, makeTestCerts, opensslAvailable, tempDir, waitFor } from '@nightshift/devfarm';
import { addService, ConnectResponseSchema, NodeService, type ConnectRequest, type ConnectResponse } from '@nightshift/proto';
import { Connection, type ConnectionOptions } from './connection.js';
import type { Lookup } from './coordinator-addresses.js';

interface Replica {
  port: number;
  registers: Extract<ConnectRequest['msg'], { case: 'register' }>['value'][];
  server: grpc.Server;
}

const replicas: Replica[] = [];
const connections: Connection[] = [];
after(() => {
  for (const c of connections) c.close();
  for (const r of replicas) r.server.forceShutdown();
});

async function startReplica(credentials = grpc.ServerCredentials.createInsecure()): Promise<Replica> {
  const server = new grpc.Server();
  const replica: Replica = { port: 0, registers: [], server };
  addService(server, NodeService, {
    connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      call.on('data', (req: ConnectRequest) => {
        if (req.msg.case !== 'register') return;
        replica.registers.push(req.msg.value);
        call.write(create(ConnectResponseSchema, { msg: { case: 'registered', value: { nodeId: req.msg.value.nodeId, heartbeatIntervalMs: 200, leaseMs: 10_000 } } }));
      });
      call.on('error', () => {});
      call.on('end', () => call.end());
    },
  });
  replica.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  replicas.push(replica);
  return replica;
}

/** A logger whose lines the test reads (which replica the node says it joined). */
function capturingLog() {
  const lines: { msg: string; coordinator?: string; held?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  return { log: createLogger('failover-test', 'info', sink), lines };
}

function connect(address: string, opts: Partial<ConnectionOptions> & Pick<ConnectionOptions, 'log'>): Connection {
  const c = new Connection({
    address,
    nodeId: 'failover-node',
    name: 'failover-node',
    capabilities: { gpuName: 'test', vramMb: 1024, backends: ['procedural'], models: [], slots: 1 },
    heldJobIds: () => [],
    onAssign: () => {},
    onCancel: () => {},
    ...opts,
  });
  connections.push(c);
  c.start();
  return c;
}

test('a dead first address is passed over; when the replica dies the node re-registers its jobs on the next one', async () => {
  const dead = await freePort();
  const a = await startReplica();
  const b = await startReplica();
  const { log, lines } = capturingLog();
  let held = ['job-1', 'job-2'];
  const c = connect(`127.0.0.1:${dead},127.0.0.1:${a.port},127.0.0.1:${b.port}`, { log, heldJobIds: () => held });
  await waitFor('register on replica a', () => a.registers.length === 1, 10_000, 10);
  assert.deepEqual(a.registers[0]!.heldJobIds, ['job-1', 'job-2']);
  assert.equal(lines.find((l) => l.msg === 'coordinator connection lost, reconnecting')?.coordinator, `127.0.0.1:${dead}`, 'the dead address was tried first');
  await waitFor('registered', () => c.connected, 10_000, 10);

  // job-1 finishes while a is serving; then a dies with job-2 still rendering.
  c.report({ case: 'completed', value: { jobId: 'job-1', renderKey: 'rk-1', imageKey: 'images/rk-1.png', thumbKey: 'thumbs/rk-1.webp', renderMs: 5, skipped: false, imageBytes: 10n } });
  held = ['job-2'];
  a.server.forceShutdown();
  await waitFor('register on replica b', () => b.registers.length === 1, 10_000, 10);
  assert.deepEqual(b.registers[0]!.heldJobIds, ['job-2'], 'the held job travels to the replica that took over');
  assert.deepEqual(b.registers[0]!.recentCompletions.map((r) => r.jobId), ['job-1'], 'a result that may not have reached a is sent again');
  await waitFor('registered on b', () => lines.some((l) => l.msg === 'registered with coordinator' && l.coordinator === `127.0.0.1:${b.port}`), 10_000, 10);
  assert.deepEqual(
    lines.filter((l) => l.msg === 'registered with coordinator').map((l) => [l.coordinator, l.held]),
    [[`127.0.0.1:${a.port}`, 2], [`127.0.0.1:${b.port}`, 1]],
    'the log names each replica joined and the jobs handed to it',
  );
  assert.equal(a.registers.length, 1);
  c.close();
});

test('with every address down, attempts back off (no tight loop) and each round looks the name up again', async () => {
  const [d1, d2] = [await freePort(), await freePort()];
  let lookups = 0;
  const lookup: Lookup = async () => {
    lookups++;
    return [{ address: '127.0.0.1', family: 4 }];
  };
  const { log } = capturingLog();
  const started = Date.now();
  connect(`down.farm:${d1},127.0.0.1:${d2}`, { log, lookup });
  // Two addresses a round, a lookup at each round's start: the third lookup is attempt 5, after
  // backoffs of at least 0.75 × (250 + 500 + 1000 + 2000) ms however many addresses there are.
  await waitFor('the third round', () => lookups >= 3, 30_000, 5);
  assert.ok(Date.now() - started >= 0.75 * (250 + 500 + 1_000 + 2_000), `5 attempts in ${Date.now() - started} ms`);
});

test('an address found by lookup is still checked against the configured name (TLS)', { skip: !opensslAvailable() && 'openssl CLI missing' }, async () => {
  const tmp = tempDir('nightshift-failover-tls-');
  try {
    // The certificate names coordinator.farm only, not 127.0.0.1: dialling the IP without the name would fail.
    const certs = makeTestCerts(join(tmp.dir, 'certs'), ['coordinator.farm']);
    const r = await startReplica(grpcServerCredentials({ NIGHTSHIFT_TLS_CERT: certs.serverCert, NIGHTSHIFT_TLS_KEY: certs.serverKey }));
    const tls = grpcClientCredentials({ NIGHTSHIFT_TLS_CA: certs.ca });
    const { log, lines } = capturingLog();
    const c = connect(`coordinator.farm:${r.port}`, { log, credentials: tls.credentials, channelOptions: tls.options, lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    await waitFor('register over TLS', () => r.registers.length === 1 && c.connected, 10_000, 10);
    assert.equal(lines.find((l) => l.msg === 'registered with coordinator')?.coordinator, `127.0.0.1:${r.port}`);
    c.close();
  } finally {
    tmp.cleanup();
  }
});
