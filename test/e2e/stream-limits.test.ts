/**
 * ensureStream against a real nats-server: the NIGHTSHIFT stream is created
 * with an age and a size limit, a stream made before there were limits is
 * brought to them, and the size limit really drops the oldest events.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connectBus, encodeJson, ensureStream, loadConfig, STREAM, streamLimits, SUBJECTS, type Bus } from '@nightshift/common';
import { startNatsServer, tempDir, type NatsServer } from '@nightshift/devfarm';

const HOUR_NS = 3_600 * 1e9;
let tmp: ReturnType<typeof tempDir>;
let nats: NatsServer;
let bus: Bus;

before(async () => {
  tmp = tempDir('nightshift-stream-limits-');
  nats = await startNatsServer(join(tmp.dir, 'nats'));
  bus = await connectBus(nats.url, 'test', undefined, {});
});

after(async () => {
  await bus?.nc.close();
  await nats?.stop();
  tmp?.cleanup();
});

test('the limits default to a week and 1 GiB, and are configurable', () => {
  assert.deepEqual(streamLimits(loadConfig({})), { maxAgeHours: 168, maxBytes: 1024 ** 3 });
  assert.deepEqual(streamLimits(loadConfig({ NIGHTSHIFT_STREAM_MAX_AGE_HOURS: '0.5', NIGHTSHIFT_STREAM_MAX_BYTES: '0' })), { maxAgeHours: 0.5, maxBytes: 0 });
  assert.throws(() => loadConfig({ NIGHTSHIFT_STREAM_MAX_BYTES: '-5' }), /NIGHTSHIFT_STREAM_MAX_BYTES/);
});

test('a stream made without limits is brought to them; a new one is made with them', async () => {
  // As every release before the limits made it.
  await bus.jsm.streams.add({ name: STREAM, subjects: ['nightshift.>'], duplicate_window: 600 * 1e9 });
  assert.equal((await bus.jsm.streams.info(STREAM)).config.max_bytes, -1);
  await bus.js.publish(SUBJECTS.sweepCreated, encodeJson({ id: 'kept' }));

  await ensureStream(bus.jsm, { maxAgeHours: 24, maxBytes: 8 * 1024 * 1024 });
  let info = await bus.jsm.streams.info(STREAM);
  assert.equal(info.config.max_age, 24 * HOUR_NS);
  assert.equal(info.config.max_bytes, 8 * 1024 * 1024);
  assert.equal(info.config.duplicate_window, 600 * 1e9, 'dedup window unchanged');
  assert.equal(info.state.messages, 1, 'updating keeps the events');

  // Settings changed later (and a dedup window never longer than the events are kept); 0 lifts a limit.
  await ensureStream(bus.jsm, { maxAgeHours: 0.05, maxBytes: 0 });
  info = await bus.jsm.streams.info(STREAM);
  assert.equal(info.config.max_age, 0.05 * HOUR_NS);
  assert.equal(info.config.max_bytes, -1);
  assert.equal(info.config.duplicate_window, 0.05 * HOUR_NS);

  await bus.jsm.streams.delete(STREAM);
  await ensureStream(bus.jsm, { maxAgeHours: 168, maxBytes: 1024 ** 3 });
  info = await bus.jsm.streams.info(STREAM);
  assert.equal(info.config.max_age, 168 * HOUR_NS);
  assert.equal(info.config.max_bytes, 1024 ** 3);
  assert.deepEqual(info.config.subjects, ['nightshift.>']);
});

test('past max bytes the oldest events are dropped, and publishing goes on', async () => {
  await bus.jsm.streams.delete(STREAM).catch(() => false);
  await ensureStream(bus.jsm, { maxAgeHours: 168, maxBytes: 64 * 1024 });
  const body = encodeJson({ pad: 'x'.repeat(1_000) });
  for (let i = 0; i < 200; i++) await bus.js.publish(SUBJECTS.nodeUp, body);
  const { state } = await bus.jsm.streams.info(STREAM);
  assert.ok(state.bytes <= 64 * 1024, `${state.bytes} bytes kept`);
  assert.ok(state.first_seq > 1, 'the oldest events went first');
  assert.equal(state.last_seq, 200, 'every publish was accepted');
});
