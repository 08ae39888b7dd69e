import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from 'prom-client';
import { createRegistry, opsAllowed, runChecks, startOpsServer } from './ops.js';
import { grpcClientCredentials, grpcServerCredentials, serverTlsMode } from './tls.js';
import { loadConfig } from './config.js';

test('runChecks: each check ok, failing with its message, or timed out', async () => {
  const r = await runChecks({ a: () => 1, b: () => Promise.reject(new Error('down')), c: () => new Promise(() => {}) }, 100);
  assert.deepEqual(r, { ready: false, checks: { a: 'ok', b: 'down', c: 'no answer in 100 ms' } });
  assert.deepEqual(await runChecks({}), { ready: true, checks: {} });
});

test('startOpsServer: /healthz, /readyz (503 when a check fails), /metrics in Prometheus text', async () => {
  const registry = createRegistry('test');
  new Counter({ name: 'nightshift_test_total', help: 'x', registers: [registry] }).inc(3);
  let up = true;
  const ops = await startOpsServer('127.0.0.1', 0, { registry, checks: { dep: () => { if (!up) throw new Error('dep away'); } } });
  try {
    const base = `http://127.0.0.1:${ops.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    up = false;
    const r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(((await r.json()) as { checks: unknown }).checks, { dep: 'dep away' });
    const m = await fetch(`${base}/metrics`);
    assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
    const text = await m.text();
    assert.match(text, /^nightshift_test_total\{service="test"\} 3$/m);
    assert.match(text, /^process_cpu_seconds_total/m);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  } finally {
    await ops.close();
  }
});

test('ops access: loopback without a metrics token; with one, only its bearers (anywhere)', async () => {
  assert.equal(opsAllowed('127.0.0.1', undefined, undefined), true);
  assert.equal(opsAllowed('::ffff:127.0.0.1', undefined, undefined), true);
  assert.equal(opsAllowed('::1', undefined, undefined), true);
  assert.equal(opsAllowed('10.0.0.5', undefined, undefined), false);
  assert.equal(opsAllowed('::ffff:192.168.1.4', undefined, undefined), false);
  assert.equal(opsAllowed('10.0.0.5', 'Bearer m-token', 'm-token'), true);
  assert.equal(opsAllowed('127.0.0.1', undefined, 'm-token'), false, 'a token, once set, is asked of everyone');
  assert.equal(opsAllowed('127.0.0.1', 'Bearer wrong', 'm-token'), false);
  const ops = await startOpsServer('127.0.0.1', 0, { registry: createRegistry('test'), checks: { dep: () => 1 } }, 'm-token');
  try {
    const base = `http://127.0.0.1:${ops.port}`;
    assert.equal((await fetch(`${base}/metrics`)).status, 403);
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer m-token' } })).status, 200);
    const bare = await fetch(`${base}/readyz`);
    assert.equal(bare.status, 200, 'a probe still learns ready or not');
    assert.deepEqual(await bare.json(), { ready: true }, 'but not what the checks are');
    assert.deepEqual(await (await fetch(`${base}/readyz`, { headers: { authorization: 'Bearer m-token' } })).json(), { ready: true, checks: { dep: 'ok' } });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  } finally {
    await ops.close();
  }
});

test('TLS settings: half-configured TLS is an error, not a silent plaintext fallback', () => {
  assert.equal(serverTlsMode(loadConfig({})), 'insecure');
  assert.throws(() => grpcServerCredentials(loadConfig({ NIGHTSHIFT_TLS_CERT: '/x.crt' })), /must be set together/);
  assert.throws(() => grpcServerCredentials(loadConfig({ NIGHTSHIFT_TLS_CLIENT_CA: '/ca.crt' })), /needs NIGHTSHIFT_TLS_CERT/);
  assert.throws(() => grpcServerCredentials(loadConfig({ NIGHTSHIFT_TLS_CERT: '/no/such.crt', NIGHTSHIFT_TLS_KEY: '/no/such.key' })), /NIGHTSHIFT_TLS_CERT: cannot read \/no\/such.crt/);
  assert.throws(() => grpcClientCredentials(loadConfig({ NIGHTSHIFT_TLS_CLIENT_CERT: '/c.crt', NIGHTSHIFT_TLS_CLIENT_KEY: '/c.key' })), /need NIGHTSHIFT_TLS_CA/);
  assert.equal(grpcClientCredentials(loadConfig({})).credentials._isSecure(), false);
});
