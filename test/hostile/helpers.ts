/** Shared pieces of the hostile-caller suites. */
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { STREAM } from '@nightshift/common';
import type { Farm } from '@nightshift/devfarm';

/** What an attack must not change: every sweep's counts (SQLite), objects in S3, messages in the stream. */
export async function farmState(farm: Farm) {
  const res = await fetch(`${farm.apiUrl}/api/sweeps?limit=1000`);
  const sweeps = ((await res.json()) as { sweeps: { id: string; counts: unknown }[] }).sweeps.map((s) => [s.id, s.counts]);
  const objects = (await farm.storage.list('images')).length + (await farm.storage.list('thumbs')).length;
  const nc = await connect({ servers: farm.nats.reachUrl });
  try {
    const messages = (await (await jetstreamManager(nc)).streams.info(STREAM)).state.messages;
    return { sweeps, objects, messages };
  } finally {
    await nc.close();
  }
}

const ORDINARY_PREVIEW = JSON.stringify({ prompts: ['a red circle'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } });

/**
 * Runs an attack and checks that it changed nothing stored and that the
 * coordinator serves an ordinary request right after. `settleMs` gives what
 * the attack set off time to land where there is no state to wait for (it
 * proves that nothing happens).
 */
export async function attack<T>(farm: Farm, run: () => Promise<T>, opts: { settleMs?: number } = {}): Promise<T> {
  const before = await farmState(farm);
  const result = await run();
  if (opts.settleMs) await new Promise((r) => setTimeout(r, opts.settleMs));
  assert.deepEqual(await farmState(farm), before, 'the attack changed stored state');
  const ok = await fetch(`${farm.apiUrl}/api/sweeps/preview`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ORDINARY_PREVIEW });
  assert.equal(ok.status, 200, 'the coordinator answers an ordinary request right after');
  return result;
}
