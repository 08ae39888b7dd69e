/**
 * The conformance suite's nodes, node tokens and webhooks: run inside
 * storeEngineConformance, so on both engines.
 */
import assert from 'node:assert/strict';
import { SUBJECTS } from '@nightshift/common';
import { LEASE_RENEW_SLACK_MS } from '../store/jobs.js';
import { jobId as jobIdOf } from '../store/rows.js';
import type { Change } from './engine.js';
import type { WithFixture } from './conformance.js';
import { LEASE, PROC, drainEvents, newJobs, report } from './conformance-helpers.js';

const CAPS = { backends: ['procedural'], vramMb: 8_192 };

export function nodeConformance(withFixture: WithFixture): void {
  withFixture('nodes: registered, seen at 10 s precision, online and offline, listed in byte order, tokens bound, jobs counted', async ({ engine, another }, clock) => {
    const other = await another();
    const t0 = clock.t;
    await other.nodes.upsertNode('n1', 'gpu-b', CAPS);
    await engine.nodes.upsertNode('n2', 'Gpu-c', { ...CAPS, vramMb: 24_576 });
    const nodes = await engine.nodes.listNodes();
    assert.deepEqual(nodes.map((n) => n.name), ['Gpu-c', 'gpu-b'], 'upper case first, as bytes sort');
    assert.deepEqual(nodes[1], { id: 'n1', name: 'gpu-b', capabilities_json: JSON.stringify(CAPS), status: 'online', last_seen: t0, connected_at: t0, jobs_done: 0 });

    clock.t += 9_999;
    assert.equal(await engine.nodes.touchNode('n1'), false, 'seen under 10 s ago: nothing written');
    clock.t += 1;
    assert.equal(await engine.nodes.touchNode('n1'), true);
    assert.equal(await engine.nodes.touchNode('n1'), false, 'just written');
    assert.equal(await engine.nodes.touchNode('n1', 0), true, 'any age at precision 0');
    assert.equal(await engine.nodes.touchNode('nope'), false);
    const seen = (await engine.nodes.listNodes()).find((n) => n.id === 'n1')!;
    assert.deepEqual([seen.last_seen, seen.connected_at], [clock.t, t0]);

    clock.t += 1_000;
    await engine.nodes.setNodeStatus('n2', 'offline');
    let n2 = (await engine.nodes.listNodes()).find((n) => n.id === 'n2')!;
    assert.deepEqual([n2.status, n2.last_seen], ['offline', clock.t]);
    clock.t += 1_000;
    await engine.nodes.upsertNode('n2', 'Gpu-a2', CAPS);
    n2 = (await engine.nodes.listNodes()).find((n) => n.id === 'n2')!;
    assert.deepEqual([n2.name, n2.status, n2.connected_at, n2.capabilities_json], ['Gpu-a2', 'online', clock.t, JSON.stringify(CAPS)]);

    await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('nd', 1), 'sw-nd');
    const job = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.equal((await engine.completeJob(job.id, 'n2', report(job))).accepted, true);
    assert.equal((await engine.nodes.listNodes()).find((n) => n.id === 'n2')!.jobs_done, 1);

    assert.equal(await engine.nodes.nodeTokenBinding('n1'), undefined);
    await engine.nodes.bindNodeToken('n1', 'fp-1');
    assert.equal(await other.nodes.nodeTokenBinding('n1'), 'fp-1');
    await engine.nodes.bindNodeToken('n1', 'fp-2');
    assert.equal(await engine.nodes.nodeTokenBinding('n1'), 'fp-2', 'a new token once the old one was revoked');
  });

  withFixture('a node marked down: offline, its leases requeued or handed to their copies, its copies ended, node.down announced with what it held', async ({ engine }, clock) => {
    for (const n of ['n1', 'n2', 'n3']) await engine.nodes.upsertNode(n, `gpu-${n}`, CAPS);
    await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('dn', 3), 'sw-dn');
    const a = (await engine.leaseNext('n1', PROC, LEASE))!;
    const b = (await engine.leaseNext('n2', PROC, LEASE))!;
    const c = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.ok(await engine.leaseCopy(b.id, 'n1', LEASE), 'n1 runs a copy of b');
    assert.ok(await engine.leaseCopy(c.id, 'n3', LEASE), 'n3 runs a copy of c');
    await drainEvents(engine);

    clock.t += 2_000;
    const released = await engine.nodes.markNodeDown('n1', 'silent');
    assert.deepEqual(released.map((j) => [j.id, j.state, j.node_id, j.copy_node_id]), [
      [a.id, 'leased', 'n1', null],
      [c.id, 'leased', 'n1', 'n3'],
    ], 'its leases as they were, by id');
    const after = async (id: string) => {
      const j = (await engine.getJob(id))!;
      return [j.state, j.node_id, j.copy_node_id, j.prev_node_id, j.error];
    };
    assert.deepEqual(await after(a.id), ['queued', null, null, 'n1', 'node n1 down: silent']);
    assert.deepEqual(await after(b.id), ['leased', 'n2', null, 'n1', null], 'its copy of b ended; b carries on');
    assert.deepEqual(await after(c.id), ['leased', 'n3', null, 'n1', null], 'c handed to its copy');
    const n1 = (await engine.nodes.listNodes()).find((n) => n.id === 'n1')!;
    assert.deepEqual([n1.status, n1.last_seen], ['offline', clock.t]);
    assert.deepEqual(await engine.leasedTo('n1'), []);
    const events = await drainEvents(engine);
    assert.deepEqual(events, [
      { subject: SUBJECTS.nodeDown, msg_id: `${SUBJECTS.nodeDown}.n1.${clock.t}`, payload: { nodeId: 'n1', at: new Date(clock.t).toISOString(), why: 'silent', requeued: 2 } },
    ]);
    assert.deepEqual(await engine.nodes.markNodeDown('n1', 'again'), [], 'nothing left to release');

    await engine.nodes.recordNodeEvent(SUBJECTS.nodeUp, 'n2', { name: 'gpu-n2' });
    assert.deepEqual(await drainEvents(engine), [
      { subject: SUBJECTS.nodeDown, msg_id: `${SUBJECTS.nodeDown}.n1.${clock.t}`, payload: { nodeId: 'n1', at: new Date(clock.t).toISOString(), why: 'again', requeued: 0 } },
      { subject: SUBJECTS.nodeUp, msg_id: `${SUBJECTS.nodeUp}.n2.${clock.t}`, payload: { nodeId: 'n2', at: new Date(clock.t).toISOString(), name: 'gpu-n2' } },
    ]);
  });

  withFixture("a starting coordinator marks offline its own nodes and those of a replica that is gone", async ({ engine, another, kill }) => {
    const gone = await another();
    await gone.nodes.upsertNode('n-gone', 'a', CAPS);
    await engine.nodes.upsertNode('n-own', 'b', CAPS);
    await kill(gone);
    await engine.nodes.markAllNodesOffline();
    assert.deepEqual((await engine.nodes.listNodes()).map((n) => [n.id, n.status]), [
      ['n-gone', 'offline'],
      ['n-own', 'offline'],
    ]);
  });
}

export function nodeOwnershipConformance(withFixture: WithFixture): void {
  withFixture('a heartbeat: seen at 10 s precision, its leases and copies renewed, and what it runs that is no longer its own named, ended through another connection', async ({ engine, another }, clock) => {
    const other = await another();
    for (const n of ['n1', 'n2']) await engine.nodes.upsertNode(n, `gpu-${n}`, CAPS);
    await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('hb', 5), 'sw-hb');
    const own = (await engine.leaseNext('n1', PROC, LEASE))!;
    const copied = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.ok(await engine.leaseCopy(copied.id, 'n1', LEASE));
    const elsewhere = (await engine.leaseNext('n2', PROC, LEASE))!;
    const finished = (await engine.leaseNext('n2', PROC, LEASE))!;
    const back = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal((await other.completeJob(finished.id, 'n2', report(finished))).accepted, true);
    await other.requeue([back.id], 'asked');
    await engine.createSweep({ name: 'c', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('hc', 1), 'sw-hc');
    const cancelled = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(cancelled.sweep_id, 'sw-hc');
    await other.cancelSweep('sw-hc');

    clock.t += 10_000;
    const running = [own.id, copied.id, elsewhere.id, finished.id, back.id, cancelled.id, 'sw-hb-999999'];
    assert.deepEqual(await engine.heartbeat('n1', running, LEASE), [elsewhere.id, finished.id, cancelled.id, 'sw-hb-999999'], "leased to n2, done by n2, cancelled, unknown: not n1's; back in the queue: still its to finish");
    const after = async (id: string) => (await engine.getJob(id))!;
    assert.equal((await after(own.id)).lease_expires_at, clock.t + LEASE, 'its lease renewed');
    assert.equal((await after(copied.id)).copy_lease_expires_at, clock.t + LEASE, 'its copy renewed');
    assert.equal((await after(copied.id)).lease_expires_at, copied.lease_expires_at, "the copy's main holder's lease untouched");
    assert.equal((await after(elsewhere.id)).lease_expires_at, elsewhere.lease_expires_at, "another node's lease untouched");
    assert.equal((await after(back.id)).state, 'queued', 'not taken back by a heartbeat');
    assert.equal((await engine.nodes.listNodes()).find((n) => n.id === 'n1')!.last_seen, clock.t, 'seen');
    clock.t += 1_000;
    assert.deepEqual(await other.heartbeat('n1', [], LEASE), [], 'nothing running, nothing named');
    assert.equal((await engine.nodes.listNodes()).find((n) => n.id === 'n1')!.last_seen, clock.t - 1_000, 'seen under 10 s ago: not written');
    assert.deepEqual(await other.heartbeat('n2', [copied.id, elsewhere.id], LEASE), [], "n2's own, asked through another connection");
  });

  withFixture('a heartbeat rewrites a lease (or a copy\'s) only once it was renewed LEASE_RENEW_SLACK_MS ago (a quarter of a short lease), and never shortens one', async ({ engine }, clock) => {
    await engine.nodes.upsertNode('n1', 'gpu-n1', CAPS);
    await engine.nodes.upsertNode('n2', 'gpu-n2', CAPS);
    await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('rd', 3), 'sw-rd');
    const t0 = clock.t;
    const job = (await engine.leaseNext('n1', PROC, LEASE))!;
    const copied = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.ok(await engine.leaseCopy(copied.id, 'n1', LEASE));
    const expiry = async (id: string) => {
      const j = (await engine.getJob(id))!;
      return [j.lease_expires_at, j.copy_lease_expires_at];
    };
    clock.t += LEASE_RENEW_SLACK_MS - 1;
    assert.deepEqual(await engine.heartbeat('n1', [job.id, copied.id], LEASE), []);
    assert.deepEqual([await expiry(job.id), await expiry(copied.id)], [[t0 + LEASE, null], [t0 + LEASE, t0 + LEASE]], 'renewed under LEASE_RENEW_SLACK_MS ago: left as it is');
    clock.t += 1;
    assert.deepEqual(await engine.heartbeat('n1', [job.id, copied.id], LEASE), []);
    assert.deepEqual([await expiry(job.id), await expiry(copied.id)], [[clock.t + LEASE, null], [t0 + LEASE, clock.t + LEASE]], 'due: the holder\'s lease and the copy renewed, the other holder\'s not');
    await engine.renewLeases('n2', [copied.id], LEASE);
    assert.deepEqual(await expiry(copied.id), [clock.t + LEASE, clock.t + LEASE], 'renewLeases follows the same rule: due, renewed');
    await engine.renewLeases('n2', [copied.id], 1_000);
    assert.deepEqual(await expiry(copied.id), [clock.t + LEASE, clock.t + LEASE], 'a shorter lease never shortens one');

    const SHORT = 4_002; // a quarter of it, in whole milliseconds: 1,000 (a fraction would be no BIGINT on PostgreSQL)
    const short = (await engine.leaseNext('n2', PROC, SHORT))!;
    const at = clock.t;
    clock.t += 999;
    await engine.heartbeat('n2', [short.id], SHORT);
    assert.equal((await engine.getJob(short.id))!.lease_expires_at, at + SHORT, 'a short lease: left as it is for a quarter of it');
    clock.t += 1;
    await engine.heartbeat('n2', [short.id], SHORT);
    assert.equal((await engine.getJob(short.id))!.lease_expires_at, clock.t + SHORT);
  });

  withFixture('a replica marks down or offline only a node it serves: not one that registered through another live replica since', async ({ engine, another, kill }) => {
    const other = await another();
    await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('mv', 2), 'sw-mv');
    await engine.nodes.upsertNode('n1', 'gpu', CAPS);
    const job = (await engine.leaseNext('n1', PROC, LEASE))!;
    await other.nodes.upsertNode('n1', 'gpu', CAPS); // n1 reconnected through the other replica
    const status = async () => (await engine.nodes.listNodes()).find((n) => n.id === 'n1')?.status;
    if (engine.kind === 'postgres') {
      assert.equal(await engine.markNodeOfflineIfOurs('n1'), false);
      assert.equal(await engine.markNodeDownIfOurs('n1', 'disconnected'), undefined);
      assert.equal((await engine.getJob(job.id))!.state, 'leased', 'its lease stays with it');
      assert.equal(await status(), 'online');
      assert.equal(await other.markNodeOfflineIfOurs('n1'), true, 'the replica serving it may');
      await other.nodes.upsertNode('n1', 'gpu', CAPS);
      await kill(other); // the replica serving it died: the node is nobody's
    }
    // SQLite: one process serves every node of its file.
    assert.deepEqual((await engine.markNodeDownIfOurs('n1', 'disconnected'))?.map((j) => j.id), [job.id]);
    assert.equal((await engine.getJob(job.id))!.state, 'queued');
    assert.equal(await status(), 'offline');
    assert.equal(await engine.markNodeOfflineIfOurs('n1'), true);
  });
}

export function webhookConformance(withFixture: WithFixture): void {
  withFixture('webhooks: deliveries written with their event (a sweep reaches its owner, node.down everyone), attempts recorded, due and next times, pruning, deletion', async ({ engine }, clock) => {
    const hook = (owner: string, events: ('sweep.finished' | 'sweep.failed' | 'sweep.cancelled' | 'node.down')[]) =>
      engine.webhooks.createWebhook({ url: `https://example.test/${owner}`, events, secret: `s-${owner}`, format: 'json', owner });
    const w1 = await hook('alice', ['sweep.finished', 'node.down']);
    clock.t += 1;
    const w2 = await hook('bob', ['sweep.finished', 'node.down']);
    clock.t += 1;
    const w3 = await hook('local', ['sweep.cancelled']);
    assert.deepEqual(w1, { id: w1.id, url: 'https://example.test/alice', events_json: '["sweep.finished","node.down"]', secret: 's-alice', format: 'json', created_at: clock.t - 2, owner: 'alice' });
    assert.match(w1.id, /^wh_[0-9a-f]{16}$/);
    assert.deepEqual((await engine.webhooks.listWebhooks()).map((w) => w.id), [w1.id, w2.id, w3.id]);
    assert.deepEqual((await engine.webhooks.listWebhooks('bob')).map((w) => w.id), [w2.id]);
    assert.deepEqual(await engine.webhooks.getWebhook(w2.id), w2);
    assert.equal(await engine.webhooks.nextDeliveryAt(), undefined);

    clock.t += 1_000;
    const created = clock.t;
    await engine.createSweep({ name: 'alice night', spec: {}, priority: 0, backend: 'procedural', model: 'm1', owner: 'alice' }, newJobs('wa', 1), 'sw-wa');
    await engine.createSweep({ name: 'local night', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('wl', 1), 'sw-wl');
    const job = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(job.sweep_id, 'sw-wa');
    clock.t += 4_000;
    await engine.completeJob(job.id, 'n1', report(job));
    const finished = clock.t;
    clock.t += 1_000;
    await engine.cancelSweep('sw-wl');
    clock.t += 1_000;
    await engine.nodes.upsertNode('n1', 'gpu-1', CAPS);
    await engine.nodes.markNodeDown('n1', 'silent');

    const [d1, d1b] = await engine.webhooks.webhookDeliveries(w1.id, 10);
    assert.ok(d1 && d1b && d1.id > d1b.id, 'newest first');
    assert.deepEqual([d1b.event, d1b.event_id, d1b.state, d1b.attempts, d1b.next_attempt_at, d1b.created_at], ['sweep.finished', 'sweep.done.sw-wa', 'pending', 0, finished, finished]);
    assert.deepEqual(JSON.parse(d1b.data_json), {
      sweepId: 'sw-wa',
      name: 'alice night',
      status: 'done',
      counts: { queued: 0, running: 0, done: 1, failed: 0, skipped: 0, cancelled: 0 },
      createdAt: new Date(created).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - created,
    });
    assert.equal(d1.event, 'node.down');
    assert.deepEqual(JSON.parse(d1.data_json), { nodeId: 'n1', name: 'gpu-1', why: 'silent', requeued: 0, at: new Date(clock.t).toISOString() });
    assert.deepEqual((await engine.webhooks.webhookDeliveries(w2.id, 10)).map((d) => d.event), ['node.down'], "not alice's sweep");
    const [d3] = await engine.webhooks.webhookDeliveries(w3.id, 10);
    assert.deepEqual([d3?.event, JSON.parse(d3!.data_json).status], ['sweep.cancelled', 'cancelled']);

    assert.equal(await engine.webhooks.nextDeliveryAt(), finished);
    const [d2] = await engine.webhooks.webhookDeliveries(w2.id, 10);
    assert.ok(d1b.id < d3!.id && d3!.id < d1.id && d1.id < d2!.id, 'written in event order, then webhook order');
    const due = await engine.webhooks.dueDeliveries(clock.t, 10);
    assert.deepEqual(due.map((d) => [d.id, d.url, d.secret, d.format]), [
      [d1b.id, w1.url, 's-alice', 'json'],
      [d3!.id, w3.url, 's-local', 'json'],
      [d1.id, w1.url, 's-alice', 'json'],
      [d2!.id, w2.url, 's-bob', 'json'],
    ]);
    assert.deepEqual((await engine.webhooks.dueDeliveries(finished, 10)).map((d) => d.id), [d1b.id], 'only those due');
    assert.deepEqual((await engine.webhooks.dueDeliveries(clock.t, 1)).map((d) => d.id), [d1b.id], 'a limit');

    await engine.webhooks.recordAttempt(d1b.id, { at: clock.t, statusCode: 503, error: 'HTTP 503', durationMs: 12, delivered: false, next: clock.t + 60_000 });
    await engine.webhooks.recordAttempt(d3!.id, { at: clock.t, statusCode: undefined, error: 'refused', durationMs: 3, delivered: false, next: undefined });
    const retried = (await engine.webhooks.webhookDeliveries(w1.id, 10))[1]!;
    assert.deepEqual([retried.state, retried.attempts, retried.next_attempt_at, retried.last_status, retried.finished_at], ['pending', 1, clock.t + 60_000, 503, null]);
    assert.equal(await engine.webhooks.nextDeliveryAt(), clock.t, 'the node.down ones');
    clock.t += 60_000;
    await engine.webhooks.recordAttempt(d1b.id, { at: clock.t, statusCode: 200, error: undefined, durationMs: 8, delivered: true, next: undefined });
    await engine.webhooks.recordAttempt(999_999, { at: clock.t, statusCode: 200, error: undefined, durationMs: 8, delivered: true, next: undefined });
    const [, sent] = await engine.webhooks.webhookDeliveries(w1.id, 10);
    assert.deepEqual([sent!.state, sent!.attempts, sent!.last_status, sent!.last_error, sent!.finished_at], ['delivered', 2, 200, null, clock.t]);
    const [gaveUp] = await engine.webhooks.webhookDeliveries(w3.id, 10);
    assert.deepEqual([gaveUp!.state, gaveUp!.attempts, gaveUp!.last_status, gaveUp!.last_error, gaveUp!.finished_at], ['failed', 1, null, 'refused', clock.t - 60_000]);
    assert.deepEqual(await engine.webhooks.deliveryAttempts([d3!.id, d1b.id]), [
      { delivery_id: d1b.id, attempt: 1, at: clock.t - 60_000, status_code: 503, error: 'HTTP 503', duration_ms: 12 },
      { delivery_id: d1b.id, attempt: 2, at: clock.t, status_code: 200, error: null, duration_ms: 8 },
      { delivery_id: d3!.id, attempt: 1, at: clock.t - 60_000, status_code: null, error: 'refused', duration_ms: 3 },
    ]);
    assert.deepEqual(await engine.webhooks.deliveryAttempts([]), []);

    assert.equal(await engine.webhooks.pruneDeliveries(clock.t + 1, 1), 1, 'the one finished first (given up)');
    assert.deepEqual(await engine.webhooks.webhookDeliveries(w3.id, 10), []);
    assert.equal(await engine.webhooks.pruneDeliveries(clock.t, 10), 0, 'the delivered one finished at `before`: kept');
    assert.equal(await engine.webhooks.pruneDeliveries(clock.t + 1, 10), 1);
    assert.deepEqual(await engine.webhooks.deliveryAttempts([d1b.id, d3!.id]), [], 'attempts go with their deliveries');
    assert.equal((await engine.webhooks.webhookDeliveries(w1.id, 10)).length, 1, 'pending ones are never pruned');

    assert.equal(await engine.webhooks.deleteWebhook(w2.id), true);
    assert.equal(await engine.webhooks.deleteWebhook(w2.id), false);
    assert.equal(await engine.webhooks.getWebhook(w2.id), undefined);
    assert.deepEqual(await engine.webhooks.webhookDeliveries(w2.id, 10), []);
    assert.deepEqual((await engine.webhooks.dueDeliveries(clock.t, 10)).map((d) => d.id), [d1.id], 'its pending delivery is not sent');
  });

  withFixture('webhook deliveries claimed by two replicas at once: none handed out twice; an attempt ends the claim; a lapsed claim is taken again', async ({ engine, another }, clock) => {
    const other = await another();
    const hook = await engine.webhooks.createWebhook({ url: 'https://example.test/down', events: ['node.down'], secret: 's', format: 'json', owner: 'local' });
    const N = 24;
    for (let i = 0; i < N; i++) {
      await engine.appendEvent(SUBJECTS.nodeDown, `node.down.n${i}`, { nodeId: `n${i}`, why: 'silent', requeued: 0, at: new Date(clock.t).toISOString() });
    }
    const all = (await engine.webhooks.webhookDeliveries(hook.id, 100)).map((d) => d.id).sort((a, b) => a - b);
    assert.equal(all.length, N);
    const CLAIM = 60_000;
    const claimed: number[] = [];
    // Rounds of four claimers at once, two per connection, until none gets anything.
    for (;;) {
      const got = await Promise.all([engine, other, engine, other].map((e) => e.webhooks.claimDeliveries(clock.t, 4, CLAIM)));
      for (const batch of got) {
        assert.ok(batch.every((d) => d.url === hook.url && d.secret === 's' && d.state === 'pending'));
        claimed.push(...batch.map((d) => d.id));
      }
      if (got.every((b) => b.length === 0)) break;
    }
    assert.deepEqual([...claimed].sort((a, b) => a - b), all, 'each delivery handed out exactly once');
    assert.equal((await engine.webhooks.dueDeliveries(clock.t, 100)).length, N, 'claimed, still due: dueDeliveries reads without claiming');

    // Sent: one delivered, one to retry now; their claims end with the attempt.
    await other.webhooks.recordAttempt(all[0]!, { at: clock.t, statusCode: 200, error: undefined, durationMs: 5, delivered: true, next: undefined });
    await other.webhooks.recordAttempt(all[1]!, { at: clock.t, statusCode: 503, error: 'HTTP 503', durationMs: 5, delivered: false, next: clock.t });
    const t0 = clock.t;
    clock.t += 1_000;
    assert.deepEqual((await engine.webhooks.claimDeliveries(clock.t, 100, CLAIM)).map((d) => [d.id, d.attempts]), [[all[1]!, 1]], 'the retry, claimable again before the first claims lapse');
    clock.t = t0 + CLAIM - 1;
    assert.deepEqual(await other.webhooks.claimDeliveries(clock.t, 100, CLAIM), [], 'claims still live');
    clock.t += 1;
    const lapsed = (await other.webhooks.claimDeliveries(clock.t, 100, CLAIM)).map((d) => d.id).sort((a, b) => a - b);
    assert.deepEqual(lapsed, all.slice(2), 'lapsed claims (their sender died) taken again; the retry claimed later still held');
    assert.equal((await engine.webhooks.webhookDeliveries(hook.id, 1))[0]!.state, 'pending');
    assert.equal(Object.keys((await engine.webhooks.webhookDeliveries(hook.id, 1))[0]!).includes('claimed_until'), false, 'rows as SQLite has them');
  });
}

export function modelHolderConformance(withFixture: WithFixture): void {
  withFixture('model holders: what each node holds, written through any connection, counted farm-wide over online nodes; a node gone offline keeps its report uncounted', async ({ engine, another }) => {
    const other = await another();
    const [h1, h2, h3] = ['1', '2', '3'].map((c) => c.repeat(64)) as [string, string, string];
    for (const n of ['n1', 'n2', 'n3']) await engine.nodes.upsertNode(n, n, CAPS);
    const counts = async () => Object.fromEntries([...(await engine.modelHolders.holderCounts())].sort(([a], [b]) => (a < b ? -1 : 1)));
    assert.deepEqual(await counts(), {});
    await engine.modelHolders.setHeld('n1', [h1, h2, h1]);
    await other.modelHolders.setHeld('n2', [h1]);
    await other.modelHolders.setHeld('n3', [h3]);
    await engine.modelHolders.setHeld('n-unknown', [h3]);
    assert.deepEqual(await counts(), { [h1]: 2, [h2]: 1, [h3]: 1 }, 'a node the farm does not know is not counted');
    assert.deepEqual(Object.fromEntries(await other.modelHolders.holderCounts()), Object.fromEntries(await engine.modelHolders.holderCounts()), 'the same from any connection');

    await other.modelHolders.setHeld('n1', [h2, h3]);
    assert.deepEqual(await counts(), { [h1]: 1, [h2]: 1, [h3]: 2 }, 'a new report replaces the old');
    await engine.modelHolders.setHeld('n2', []);
    assert.deepEqual(await counts(), { [h2]: 1, [h3]: 2 }, 'an empty report forgets');
    await engine.nodes.setNodeStatus('n3', 'offline');
    await engine.nodes.markNodeDown('n1', 'silent');
    assert.deepEqual(await counts(), {}, 'offline nodes are not holders');
    await engine.nodes.upsertNode('n1', 'n1', CAPS);
    assert.deepEqual(await counts(), { [h2]: 1, [h3]: 1 }, 'back online with what it last reported');

    const tooMany = Array.from({ length: 1_002 }, (_, i) => i.toString(16).padStart(64, '0'));
    await assert.rejects(engine.modelHolders.setHeld('n1', tooMany), /holds 1002 models, more than the 1001/);
    assert.deepEqual(await counts(), { [h2]: 1, [h3]: 1 }, 'a refused report changes nothing');
    await engine.modelHolders.setHeld('n1', tooMany.slice(0, 1_001));
    assert.equal((await engine.modelHolders.holderCounts()).size, 1_001);
  });
}

/** What a subscriber heard, and a wait for what it has not yet heard. */
class Heard<T> {
  readonly heard: T[] = [];
  private waiters: { pred: (xs: T[]) => boolean; resolve: () => void }[] = [];
  readonly listener = (x: T): void => {
    this.heard.push(x);
    this.waiters = this.waiters.filter((w) => (w.pred(this.heard) ? (w.resolve(), false) : true));
  };

  until(pred: (xs: T[]) => boolean): Promise<void> {
    return pred(this.heard) ? Promise.resolve() : new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  clear(): void {
    this.heard.length = 0;
  }
}

export function changeConformance(withFixture: WithFixture): void {
  withFixture('changes for live clients: another connection\'s sweeps and nodes changing are heard after commit, a heartbeat is not; an unsubscribed listener hears nothing more', async ({ engine, another }) => {
    const other = await another();
    const first = new Heard<Change>();
    const second = new Heard<Change>();
    const unsubscribe = await engine.subscribeChanges(first.listener);
    const unsubscribeSecond = await engine.subscribeChanges(second.listener);
    const sweepChanged = (id: string) => (cs: Change[]) => cs.some((c) => c.type === 'sweep' && c.sweepId === id);
    const nodeIs = (id: string, status: string) => (cs: Change[]) => cs.some((c) => c.type === 'node' && c.nodeId === id && c.status === status);
    let fences = 0;
    /** Heard in commit order: once a later change is heard, anything before it would have been. */
    const fence = async () => {
      const id = `fence-${++fences}`;
      await other.nodes.upsertNode(id, id, CAPS);
      await first.until(nodeIs(id, 'online'));
      return first.heard.filter((c) => !(c.type === 'node' && c.nodeId === id));
    };

    await other.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, newJobs('ch', 2), 'sw-ch');
    await first.until(sweepChanged('sw-ch'));
    first.clear();
    await other.leaseNext('n1', PROC, LEASE);
    await first.until(sweepChanged('sw-ch'));
    await other.nodes.upsertNode('n1', 'gpu', CAPS);
    await first.until(nodeIs('n1', 'online'));
    first.clear();
    await other.nodes.touchNode('n1', 0);
    await other.renewLeases('n1', [jobIdOf('sw-ch', 0)], LEASE);
    assert.deepEqual(await fence(), [], 'a heartbeat and a renewal change nothing live clients show');
    first.clear();
    await other.nodes.setNodeStatus('n1', 'offline');
    await first.until(nodeIs('n1', 'offline'));
    await other.nodes.markNodeDown('n1', 'silent');
    await first.until((cs) => nodeIs('n1', 'down')(cs) && sweepChanged('sw-ch')(cs));
    first.clear();
    await other.setPriority('sw-ch', 3);
    await first.until(sweepChanged('sw-ch'));
    first.clear();
    await other.cancelSweep('sw-ch');
    await first.until(sweepChanged('sw-ch'));
    await second.until(sweepChanged('sw-ch'));

    await unsubscribe();
    first.clear();
    second.clear();
    await other.setPriority('sw-ch', 4);
    await second.until(sweepChanged('sw-ch'));
    assert.deepEqual(first.heard, [], 'an unsubscribed listener hears nothing more');
    await unsubscribeSecond();
  });
}
