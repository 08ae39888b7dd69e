import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { farmOnline } from './farm-online.js';
import type { OnlineNode } from './placement.js';

test("farm-wide online nodes: this replica's sessions first (with model caches), then the database's other online nodes; offline ones left out; read again after a second", async () => {
  const engine = new SqliteEngine(new EngineStore(openDb(':memory:')), true);
  const clock = { t: 0 };
  await engine.nodes.upsertNode('here', 'here', { backends: ['procedural'], vramMb: 8_192 });
  await engine.nodes.upsertNode('there', 'there', { backends: ['onnx'], models: ['m'], vramMb: 24_576 });
  await engine.nodes.upsertNode('gone', 'gone', { backends: ['onnx'], vramMb: 24_576 });
  await engine.nodes.setNodeStatus('gone', 'offline');
  const local: OnlineNode[] = [{ nodeId: 'here', caps: { backends: ['procedural'], models: [], vramMb: 8_192 }, models: { cached: [], loaded: '', downloads: [], bytesPerS: 0 } }];
  const online = farmOnline(engine.nodes, () => local, 60_000, () => clock.t);
  assert.deepEqual(await online(), [local[0], { nodeId: 'there', caps: { backends: ['onnx'], models: ['m'], vramMb: 24_576 } }]);
  await engine.nodes.setNodeStatus('there', 'offline');
  assert.equal((await online()).length, 2, 'kept for a moment');
  clock.t += 1_001;
  assert.deepEqual((await online()).map((n) => n.nodeId), ['here']);
  await engine.close();
});
