/**
 * Node enrolment and operability over a coordinator that takes node tokens
 * from an env list and a hashed tokens file: token refusal and revocation,
 * /metrics, /healthz and /readyz, node identity across a restart, and no
 * token in any log. gRPC is plaintext here so these run without openssl;
 * the same checks over mTLS are in secure-farm-tls.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tempDir, waitFor } from '@nightshift/devfarm';
import { metric, startSecureFarm, tokenLine, TOKEN_A, TOKEN_B, TOKEN_ENV, WRONG, type SecureFarm } from './secure-farm-harness.js';

describe('secure farm: node tokens, metrics and health', { timeout: 180_000 }, () => {
  const tmp = tempDir('nightshift-secure-');
  let f: SecureFarm;

  before(async () => {
    f = await startSecureFarm(tmp.dir);
  });

  after(async () => {
    await f?.stop();
    tmp.cleanup();
  });

  test('a node enrolled by a token in the file renders', async () => {
    const a = await f.node('node-a', { NIGHTSHIFT_NODE_TOKEN: TOKEN_A });
    await waitFor('node-a registered', () => f.coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const id = await f.submit(4, 'a red circle');
    assert.equal((await f.sweepDone(id)).counts.done, 4);
    assert.ok(f.coordLog.has('node registered', (l) => l.node === 'node-a'));
    assert.ok(a.connection.connected);
  });

  test('/metrics, /healthz and /readyz on the coordinator and the gpu-node', async () => {
    const { api } = f;
    const nodeUrl = `http://127.0.0.1:${f.nodes.get('node-a')!.metricsPort!}`;
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
    assert.deepEqual(((await (await fetch(`${api}/readyz`)).json()) as { checks: unknown }).checks, { sqlite: 'ok', nats: 'ok', s3: 'ok', loop: 'ok' });

    // A dependency away: not ready (with the reason), still healthy; back: ready again.
    await f.s3.stop();
    try {
      const r = await fetch(`${api}/readyz`);
      assert.equal(r.status, 503);
      assert.notEqual(((await r.json()) as { checks: { s3: string } }).checks.s3, 'ok');
      assert.equal((await fetch(`${nodeUrl}/readyz`)).status, 503);
      assert.equal((await fetch(`${api}/healthz`)).status, 200);
    } finally {
      await f.s3.start();
    }
    await waitFor('ready again', async () => (await fetch(`${api}/readyz`)).status === 200, 10_000);
  });

  test('a node restarted with the same NIGHTSHIFT_NODE_ID is recognised as the same node', async () => {
    type Nodes = { nodes: { id: string; status: string; jobsDone: number }[] };
    const before = ((await (await fetch(`${f.api}/api/nodes`)).json()) as Nodes).nodes;
    await f.nodes.get('node-a')!.stop();
    await waitFor('node-a offline', () => !f.coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const again = await f.node('node-a', { NIGHTSHIFT_NODE_TOKEN: TOKEN_A });
    await waitFor('node-a back', () => again.connection.connected && f.coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const now = ((await (await fetch(`${f.api}/api/nodes`)).json()) as Nodes).nodes;
    assert.equal(now.length, before.length, 'no second entry for the same node');
    const a = now.find((n) => n.id === 'node-a')!;
    assert.equal(a.status, 'online');
    assert.equal(a.jobsDone, before.find((n) => n.id === 'node-a')!.jobsDone, 'its history is kept');
  });

  test('a wrong or missing token is refused: the node never gets work, both sides log why', async () => {
    const { coordLog, coordinator } = f;
    await f.nodes.get('node-a')!.stop();
    f.nodes.delete('node-a');
    await waitFor('node-a gone', () => !coordinator.deps.hub.connectedNodeIds().includes('node-a'));
    const w = await f.node('node-w', { NIGHTSHIFT_NODE_TOKEN: WRONG });
    const m = await f.node('node-m', { NIGHTSHIFT_NODE_TOKEN: undefined });
    const id = await f.submit(3, 'a blue square');
    await waitFor('both refusals logged', () => coordLog.has('node refused: bad node token', (l) => l.node === 'node-w') && coordLog.has('node refused: bad node token', (l) => l.node === 'node-m'));
    await new Promise((r) => setTimeout(r, 1_500));
    const s = (await (await fetch(`${f.api}/api/sweeps/${id}`)).json()) as { counts: Record<string, number> };
    assert.equal(s.counts.queued, 3, 'nothing was leased to the refused nodes');
    for (const n of [w, m]) {
      assert.equal(n.connection.connected, false);
      assert.deepEqual(n.worker.heldJobIds(), []);
    }
    assert.ok(coordLog.has('node refused: bad node token', (l) => l.node === 'node-w' && l.reason === 'unknown or revoked token'));
    assert.ok(coordLog.has('node refused: bad node token', (l) => l.node === 'node-m' && l.reason === 'missing token'));
    assert.ok(f.nodeLogs.get('node-w')!.has('coordinator refused this node', (l) => /node token refused \(unknown or revoked token\)/.test(String(l.details))));
    assert.ok(f.nodeLogs.get('node-m')!.has('coordinator refused this node', (l) => /missing token/.test(String(l.details))));
    assert.ok((await metric(`${f.api}/metrics`, /^nightshift_node_auth_refused_total\{[^}]*reason="unknown or revoked token"[^}]*\} (\d+)$/m))! >= 1);

    // The env-list token is enrolled too: that node takes the waiting sweep.
    await f.node('node-e', { NIGHTSHIFT_NODE_TOKEN: TOKEN_ENV });
    assert.equal((await f.sweepDone(id)).counts.done, 3);
    assert.deepEqual(w.worker.heldJobIds(), []);
    for (const n of ['node-w', 'node-m', 'node-e']) {
      await f.nodes.get(n)!.stop();
      f.nodes.delete(n);
    }
  });

  test('revoking a token in the file drops the connected node and refuses its return', async () => {
    const b = await f.node('node-b', { NIGHTSHIFT_NODE_TOKEN: TOKEN_B });
    await waitFor('node-b registered', () => b.connection.connected);
    writeFileSync(f.tokensFile, tokenLine('gpu-a', TOKEN_A));
    await waitFor('node-b dropped', () => f.coordLog.has('node token revoked: session closed', (l) => l.node === 'node-b' && l.tokenName === 'gpu-b'), 10_000);
    await waitFor('node-b refused on its return', () => f.coordLog.has('node refused: bad node token', (l) => l.node === 'node-b'), 10_000);
    assert.equal(b.connection.connected, false);
    assert.ok(!f.coordinator.deps.hub.connectedNodeIds().includes('node-b'));
  });

  test('no token value appears in any log, on either side', () => {
    assert.ok(f.coordLog.lines.length > 10 && f.nodeLogs.size >= 4);
    f.assertNoTokenLogged();
  });
});
