/**
 * Fair share between people on a real farm (issue 16): alice (weight 1) has
 * ten sweeps, bob (weight 3) one; two gpu-nodes render them. While both have
 * work, bob's single sweep must finish three jobs for each one of alice's
 * ten together (±10 %): people first, then their sweeps. Progress is counted
 * from the jobs' completions in the order the coordinator announced them
 * (GET /api/events), not from timing.
 *
 * Each node holds 4 leases (1 slot × prefetch 4), so each can hold its own
 * 1 : 3 (a refill goes to whoever is below their share, which is the user
 * whose job just finished there): the ratio then does not depend on which
 * node is faster. The nodes resume one after the other so that each fills
 * that way.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { main } from '@nightshift/cli';
import { collectEvents, startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const ADMIN = 'farm-admin-token-for-the-fair-share-test';
const WEIGHTS = { alice: 1, bob: 3 };
const ALICE_SWEEPS = 10;
const ALICE_IMAGES = 10;
const BOB_IMAGES = 80;
const PREFETCH = 4;
const NODES = ['node-0', 'node-1'];

describe('fair share between people on a real farm', { timeout: 300_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;
  const stopEvents = new AbortController();

  before(async () => {
    tmp = tempDir();
    // Straggler copies off: only the scheduler's picks decide who renders what.
    farm = await startFarm({ dir: tmp.dir, nodes: NODES.length, env: { NIGHTSHIFT_API_TOKEN: ADMIN, NIGHTSHIFT_NODE_TOKEN: 'node-token-for-the-fair-share-test', NIGHTSHIFT_STRAGGLER_MIN_MS: '0', NIGHTSHIFT_PREFETCH_PER_SLOT: String(PREFETCH) } });
    await waitForNodes(farm.apiUrl, NODES.length, { authorization: `Bearer ${ADMIN}` });
  });
  after(async () => {
    stopEvents.abort();
    await farm?.stop();
    tmp?.cleanup();
  });

  const call = async <T>(token: string, method: string, path: string, body?: unknown, status = 200): Promise<T> => {
    const res = await fetch(`${farm.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    assert.equal(res.status, status, `${method} ${path}: ${text}`);
    return JSON.parse(text) as T;
  };
  const addKey = async (name: string, weight: number) => {
    let out = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) });
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const code = await main(['node', 'nightshift', '--url', farm.apiUrl, '--token', ADMIN, 'keys', 'add', name, '--weight', String(weight)], { out: sink, err: quiet, env: {} });
    assert.equal(code, 0);
    return out.trim();
  };
  const nodeView = async (node: string) => {
    const { nodes } = await call<{ nodes: { id: string; sleeping: unknown; currentJobs: string[] }[] }>(ADMIN, 'GET', '/api/nodes');
    return nodes.find((n) => n.id === node);
  };
  const sleeping = async (node: string) => (await nodeView(node))?.sleeping ?? null;

  test("bob's one sweep and alice's ten progress 3 : 1, as their weights say", async () => {
    const alice = await addKey('alice', WEIGHTS.alice);
    const bob = await addKey('bob', WEIGHTS.bob);
    // Nodes paused while the work is submitted, so neither user starts with a head start.
    for (const node of NODES) {
      await call(ADMIN, 'POST', `/api/nodes/${node}/pause`);
      await waitFor(`${node} paused`, async () => (await sleeping(node)) !== null, 20_000);
    }
    const owner = new Map<string, 'alice' | 'bob'>();
    for (let i = 0; i < ALICE_SWEEPS; i++) {
      const { id } = await call<{ id: string }>(alice, 'POST', '/api/sweeps', { name: `alice-${i}`, prompts: [`alice ${i}`], seeds: { count: ALICE_IMAGES }, params: { width: 64, height: 64, steps: 4 } }, 201);
      owner.set(id, 'alice');
    }
    const { id: bobSweep } = await call<{ id: string }>(bob, 'POST', '/api/sweeps', { name: 'bob', prompts: ['bob'], seeds: { count: BOB_IMAGES }, params: { width: 64, height: 64, steps: 4 } }, 201);
    owner.set(bobSweep, 'bob');

    const events: Record<string, unknown>[] = [];
    await collectEvents(farm.apiUrl, events, stopEvents.signal, { authorization: `Bearer ${ADMIN}` });
    for (const node of NODES) {
      await call(ADMIN, 'POST', `/api/nodes/${node}/resume`);
      await waitFor(`${node} to hold ${PREFETCH} jobs`, async () => ((await nodeView(node))?.currentJobs.length ?? 0) >= PREFETCH, 30_000, 20);
    }
    await waitFor('every sweep to finish', async () => {
      const { sweeps } = await call<{ sweeps: { status: string }[] }>(ADMIN, 'GET', '/api/sweeps');
      return sweeps.every((s) => s.status === 'done');
    }, 240_000, 500);

    // Finishes in announced order. Bob holds at most 8 leases (2 nodes × 4), so until his
    // (BOB_IMAGES − 9)th finish he still had queued work; alice has far more throughout.
    const finishes = events.filter((e) => e.type === 'job' && (e.state === 'done' || e.state === 'skipped')).map((e) => owner.get(String(e.sweepId)));
    assert.equal(finishes.length, ALICE_SWEEPS * ALICE_IMAGES + BOB_IMAGES, 'every job announced its finish once');
    const done = { alice: 0, bob: 0 };
    for (const who of finishes) {
      if (done.bob === BOB_IMAGES - 9) break;
      done[who!]++;
    }
    const ratio = done.bob / done.alice;
    const want = WEIGHTS.bob / WEIGHTS.alice;
    console.log(JSON.stringify({ finishedWhileBothHadWork: done, ratio: Number(ratio.toFixed(3)), want }));
    assert.ok(Math.abs(ratio - want) <= want * 0.1, `bob:alice finished ${done.bob}:${done.alice} = ${ratio.toFixed(2)}, want ${want} ± 10 %`);
    // Alice's ten sweeps shared her part between them (people first, then their sweeps).
    const { sweeps } = await call<{ sweeps: { id: string; counts: { done: number; skipped: number } }[] }>(alice, 'GET', '/api/sweeps');
    assert.equal(sweeps.length, ALICE_SWEEPS, 'alice sees her ten sweeps, not bob’s');
  });
});
