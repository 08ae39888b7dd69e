/** The browser guard and the start-up refusals, on a bare Hono app: no servers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hono } from 'hono';
import { loadConfig } from '@nightshift/common';
import { hostName, requestGuard } from './request-guard.js';
import { unsafeExposure } from './startup-checks.js';

function app(checkHost = true) {
  const a = new Hono();
  a.use('*', requestGuard({ checkHost, allowedHosts: ['farm.lan'], allowedOrigins: ['https://tools.example'] }));
  a.post('/api/sweeps', (c) => c.json({ ok: true }, 201));
  a.post('/api/sweeps/preview', (c) => c.json({ ok: true }));
  a.post('/api/sweeps/:id/cancel', (c) => c.json({ ok: true }));
  a.get('/api/sweeps', (c) => c.json({ ok: true }));
  return a;
}

const post = (path: string, headers: Record<string, string>, body = '{}') =>
  app().request(`http://127.0.0.1:8080${path}`, { method: 'POST', headers: { host: '127.0.0.1:8080', ...headers }, body });

test('a text/plain or form-encoded POST from a web page is refused; JSON from the farm itself passes', async () => {
  assert.equal((await post('/api/sweeps', { 'content-type': 'text/plain' })).status, 415, 'no-cors text/plain');
  assert.equal((await post('/api/sweeps', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1')).status, 415);
  assert.equal((await post('/api/sweeps', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--')).status, 415);
  assert.equal((await post('/api/sweeps', {}, 'x')).status, 415, 'no content type');
  assert.equal((await post('/api/sweeps', { 'content-type': 'application/json; charset=utf-8' })).status, 201);
  assert.equal((await post('/api/sweeps/preview', { 'content-type': 'text/plain' }, 'prompts: [a]')).status, 200, 'the preview reads YAML text');
});

test('a state-changing request from another origin is refused, even as JSON or without a body', async () => {
  const json = { 'content-type': 'application/json' };
  const res = await post('/api/sweeps', { ...json, origin: 'http://evil.example' });
  assert.equal(res.status, 403);
  assert.match(((await res.json()) as { error: string }).error, /origin http:\/\/evil.example/);
  assert.equal((await post('/api/sweeps/s1/cancel', { origin: 'http://evil.example' }, '')).status, 403);
  assert.equal((await post('/api/sweeps', { ...json, origin: 'null' })).status, 403);
  assert.equal((await post('/api/sweeps', { ...json, origin: 'http://127.0.0.1:8080' })).status, 201, 'own origin');
  assert.equal((await post('/api/sweeps', { ...json, origin: 'https://tools.example' })).status, 201, 'configured origin');
  assert.equal((await post('/api/sweeps', json)).status, 201, 'no Origin: not a browser (CLI, curl)');
});

test('on loopback without a token, a Host that is not loopback, an IP or a configured name gets 421 (DNS rebinding)', async () => {
  const get = (host: string, checkHost = true) => app(checkHost).request(`http://${host}/api/sweeps`, { headers: { host } });
  assert.equal((await get('evil.example:8080')).status, 421);
  assert.equal((await get('127.0.0.1.evil.example')).status, 421);
  for (const ok of ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '192.168.1.20:8080', 'farm.lan:8080', 'FARM.LAN']) assert.equal((await get(ok)).status, 200, ok);
  assert.equal((await get('evil.example:8080', false)).status, 200, 'not checked behind a token or off loopback');
  assert.equal(hostName('[::1]:80'), '::1');
  assert.equal(hostName('a b'), undefined);
});

test('the coordinator refuses to listen beyond loopback without tokens, naming the setting', () => {
  const cfg = (env: Record<string, string>) => loadConfig({ NIGHTSHIFT_DATA_DIR: '/tmp/x', ...env });
  assert.equal(unsafeExposure(cfg({})), undefined, 'loopback, no tokens: fine');
  assert.match(unsafeExposure(cfg({ NIGHTSHIFT_HTTP_HOST: '0.0.0.0' }))!, /NIGHTSHIFT_API_TOKEN is not set/);
  assert.match(unsafeExposure(cfg({ NIGHTSHIFT_HTTP_HOST: '0.0.0.0', NIGHTSHIFT_API_TOKEN: 't' }))!, /no node token/);
  assert.equal(unsafeExposure(cfg({ NIGHTSHIFT_HTTP_HOST: '0.0.0.0', NIGHTSHIFT_API_TOKEN: 't', NIGHTSHIFT_NODE_TOKEN: 'n' })), undefined);
  assert.match(unsafeExposure(cfg({ NIGHTSHIFT_API_TOKEN: 't' }))!, /NIGHTSHIFT_NODE_TOKEN/, 'an API token asks for node tokens even on loopback');
  assert.equal(unsafeExposure(cfg({ NIGHTSHIFT_HTTP_HOST: '0.0.0.0', NIGHTSHIFT_INSECURE_OPEN: '1' })), undefined);
});
