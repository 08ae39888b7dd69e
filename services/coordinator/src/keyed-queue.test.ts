import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedQueue } from './keyed-queue.js';

const tick = () => new Promise((r) => setImmediate(r));

test('work for one key runs one at a time, in order, even when it awaits', async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  const step = (name: string) => async () => {
    log.push(`${name} start`);
    await tick();
    log.push(`${name} end`);
  };
  await Promise.all([q.run('a', step('1')), q.run('a', step('2')), q.run('a', step('3'))]);
  assert.deepEqual(log, ['1 start', '1 end', '2 start', '2 end', '3 start', '3 end']);
});

test('different keys interleave; a failure settles its own call only and the line goes on', async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  let release!: () => void;
  const blocked = q.run('a', () => new Promise<void>((r) => (release = r)).then(() => void log.push('a')));
  await q.run('b', async () => void log.push('b'));
  assert.deepEqual(log, ['b'], 'b ran while a waited');
  const failed = q.run('a', async () => {
    throw new Error('boom');
  });
  const after = q.run('a', async () => 'after');
  release();
  await blocked;
  await assert.rejects(failed, /boom/);
  assert.equal(await after, 'after');
  await q.idle();
  assert.equal(q.size, 0, 'finished lines are forgotten');
});
