import assert from 'node:assert/strict';
import { test } from 'node:test';
import { natsAuth, natsAuthOptions } from './bus-auth.js';
import { loadConfig } from './config.js';

test('NATS credentials: none, a user and password, or a creds file, read from the configuration', () => {
  assert.deepEqual(natsAuth(loadConfig({})), {});
  assert.deepEqual(natsAuthOptions({}), {});
  const pair = natsAuth(loadConfig({ NIGHTSHIFT_NATS_USER: 'u', NIGHTSHIFT_NATS_PASSWORD: 'p' }));
  assert.deepEqual(pair, { user: 'u', password: 'p' });
  assert.deepEqual(natsAuthOptions(pair), { user: 'u', pass: 'p' });
  assert.deepEqual(natsAuth({ NIGHTSHIFT_NATS_CREDS: '/etc/nightshift/nats.creds' }), { credsFile: '/etc/nightshift/nats.creds' });
});

test('half a pair, both kinds at once, or an unreadable creds file is an error naming the setting (not an anonymous connection)', () => {
  assert.throws(() => natsAuth({ NIGHTSHIFT_NATS_USER: 'u' }), /NIGHTSHIFT_NATS_USER and NIGHTSHIFT_NATS_PASSWORD/);
  assert.throws(() => natsAuth({ NIGHTSHIFT_NATS_PASSWORD: 'p' }), /NIGHTSHIFT_NATS_USER and NIGHTSHIFT_NATS_PASSWORD/);
  assert.throws(() => natsAuth({ NIGHTSHIFT_NATS_USER: 'u', NIGHTSHIFT_NATS_PASSWORD: 'p', NIGHTSHIFT_NATS_CREDS: 'x.creds' }), /either NIGHTSHIFT_NATS_CREDS/);
  assert.throws(() => natsAuthOptions({ credsFile: '/nonexistent/nats.creds' }), /NIGHTSHIFT_NATS_CREDS: cannot read \/nonexistent\/nats\.creds/);
});
