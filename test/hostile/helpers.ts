/** Shared pieces of the hostile-caller suites. */
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
