/**
 * The conformance suite's listings (sweep pages, a sweep's jobs, rendered
 * images, result audits, pending events), people (active keys, admins,
 * quotas, wildcard owners) and retention: run inside storeEngineConformance,
 * so on both engines.
 */
import assert from 'node:assert/strict';
import { jobId } from '../store/rows.js';
import { ownKeys } from '../store/completion.js';
import type { WithFixture } from './conformance.js';
import { LEASE, PROC, drainEvents, newJobs, report } from './conformance-helpers.js';
import { RETENTION_DUTY, RetentionDuty } from './retention-duty.js';
import { CapReached, QuotaRaced, type StoreEngine } from './engine.js';

const sweep = (name: string, owner?: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1', ...(owner ? { owner } : {}) });

export function listingConformance(withFixture: WithFixture): void {
  withFixture('listings: sweeps newest first, paged, per owner; a sweep\'s jobs by index, by state, paged; rendered images and who owns them; result audits; pending events', async ({ engine }, clock) => {
    await engine.createSweep(sweep('one', 'alice'), newJobs('l1', 2), 'sw-l1');
    await engine.createSweep(sweep('two'), newJobs('l2', 5), 'sw-l2');
    await engine.createSweep(sweep('three', 'alice'), newJobs('l3', 1), 'sw-l3B');
    await engine.createSweep(sweep('four', 'alice'), newJobs('l4', 1), 'sw-l3a');
    clock.t += 1_000;
    await engine.createSweep(sweep('five'), [], 'sw-l5');
    const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
    // Same created_at: by id in byte order ('B' before 'a').
    assert.deepEqual(ids(await engine.listings.listSweeps()), ['sw-l5', 'sw-l1', 'sw-l2', 'sw-l3B', 'sw-l3a']);
    assert.deepEqual(ids(await engine.listings.listSweeps({ offset: 1, limit: 2 })), ['sw-l1', 'sw-l2']);
    assert.deepEqual(ids(await engine.listings.listSweeps(undefined, 'alice')), ['sw-l1', 'sw-l3B', 'sw-l3a']);
    assert.deepEqual(ids(await engine.listings.listSweeps({ offset: 2, limit: 5 }, 'alice')), ['sw-l3a']);
    assert.deepEqual(await engine.listings.listSweeps({ offset: 0, limit: 5 }, 'nobody'), []);
    assert.deepEqual((await engine.listings.listSweeps())[1], await engine.getSweep('sw-l1'), 'whole rows');
    assert.equal(await engine.listings.sweepCount(), 5);
    assert.equal(await engine.listings.sweepCount('alice'), 3);
    assert.equal(await engine.listings.sweepCount('nobody'), 0);

    // One sweep open at a time, so the picks do not depend on fair share.
    for (const id of ['sw-l2', 'sw-l3B', 'sw-l3a']) await engine.setPaused(id, true);
    const a = (await engine.leaseNext('n1', PROC, LEASE))!;
    const b = (await engine.leaseNext('n2', PROC, LEASE))!;
    assert.deepEqual([a.sweep_id, b.sweep_id], ['sw-l1', 'sw-l1']);
    await engine.completeJob(a.id, 'n1', report(a));
    await engine.completeJob(a.id, 'n1', report(a));
    await engine.failJob(b.id, { id: 'n2', vramMb: 8_192 }, { error: 'crash', logTail: '', outOfMemory: false });
    await engine.setPaused('sw-l1', true);
    await engine.setPaused('sw-l2', false);
    const c = (await engine.leaseNext('n3', PROC, LEASE))!;
    assert.equal(c.sweep_id, 'sw-l2');
    await engine.completeJob(c.id, 'n3', report(c, true));

    const jobs = await engine.listings.jobs('sw-l2');
    assert.deepEqual(jobs.map((j) => j.idx), [0, 1, 2, 3, 4]);
    assert.deepEqual(jobs[0], await engine.getJob(c.id), 'whole rows');
    assert.deepEqual(ids(await engine.listings.jobs('sw-l2', ['queued'], { offset: 1, limit: 2 })), [jobId('sw-l2', 2), jobId('sw-l2', 3)]);
    assert.deepEqual(ids(await engine.listings.jobs('sw-l2', ['skipped', 'done'])), [c.id]);
    assert.deepEqual(ids(await engine.listings.jobs('sw-l1', [])), [a.id, b.id], 'no states: all');
    assert.deepEqual(ids(await engine.listings.jobs('sw-l2', undefined, { offset: 4, limit: 10 })), [jobId('sw-l2', 4)]);
    assert.deepEqual(await engine.listings.jobs('sw-none'), []);

    assert.deepEqual(await engine.listings.renderedJob(a.render_key), await engine.getJob(a.id));
    assert.equal((await engine.listings.renderedJob(c.render_key))?.id, c.id, 'a skip rendered it earlier');
    assert.equal(await engine.listings.renderedJob(b.render_key), undefined, 'queued again, not rendered');
    assert.equal(await engine.listings.imageOwnedBy(a.render_key, 'alice'), true);
    assert.equal(await engine.listings.imageOwnedBy(a.render_key, 'local'), false);
    assert.equal(await engine.listings.imageOwnedBy(c.render_key, 'local'), true);
    assert.equal(await engine.listings.imageOwnedBy(b.render_key, 'alice'), false, 'not rendered');

    assert.deepEqual(await engine.listings.results(a.id), [
      { node_id: 'n1', skipped: 0, accepted: 1, copy: 0 },
      { node_id: 'n1', skipped: 0, accepted: 0, copy: 0 },
    ], 'a repeated report is audited, not accepted');
    assert.deepEqual(await engine.listings.results(c.id), [{ node_id: 'n3', skipped: 1, accepted: 1, copy: 0 }]);
    assert.deepEqual(await engine.listings.results(b.id), []);

    const pending = await engine.listings.pendingEvents(100);
    assert.deepEqual(pending.map((e) => e.msg_id).slice(0, 3), ['sweep.created.sw-l1', 'sweep.created.sw-l2', 'sweep.created.sw-l3B']);
    assert.deepEqual(await engine.listings.pendingEvents(1), pending.slice(0, 1));
    const drained = await drainEvents(engine);
    assert.deepEqual(drained.map((e) => e.msg_id), pending.map((e) => e.msg_id));
    assert.deepEqual(await engine.listings.pendingEvents(100), [], 'published ones are not pending');
  });
}

export function peopleConformance(withFixture: WithFixture): void {
  withFixture('people: active keys, admins and active users follow keys and revocations; images submitted per owner since a time; wildcard lists keep their first owner', async ({ engine }, clock) => {
    assert.equal(await engine.people.hasActiveKeys(), false, 'a farm with no keys');
    assert.deepEqual(await engine.people.activeAdmins(), [], 'local is an admin without a key');
    const t0 = clock.t;
    await engine.addKey({ name: 'bob', admin: false, weight: 2, quotaImages: 100 }, 'h-bob');
    clock.t += 1;
    await engine.addKey({ name: 'Zed', admin: true, weight: 1, quotaImages: null }, 'h-zed');
    await engine.addKey({ name: 'alice', admin: true, weight: 1, quotaImages: null }, 'h-alice');
    assert.equal(await engine.people.hasActiveKeys(), true);
    assert.deepEqual(await engine.people.activeAdmins(), ['Zed', 'alice'], 'byte order');
    assert.deepEqual(await engine.people.listUsers(), [
      { name: 'local', admin: 1, weight: 1, quota_images: null, running: 0, created_at: 0, keys: 0 },
      { name: 'bob', admin: 0, weight: 2, quota_images: 100, running: 0, created_at: t0, keys: 1 },
      { name: 'Zed', admin: 1, weight: 1, quota_images: null, running: 0, created_at: t0 + 1, keys: 1 },
      { name: 'alice', admin: 1, weight: 1, quota_images: null, running: 0, created_at: t0 + 1, keys: 1 },
    ]);
    assert.deepEqual(await engine.people.activeUser('bob'), await engine.getUser('bob'));
    assert.equal(await engine.people.activeUser('local'), undefined, 'no key');
    assert.equal(await engine.people.activeUser('nobody'), undefined);
    assert.equal(await engine.revokeKeys('Zed'), 1);
    assert.deepEqual(await engine.people.activeAdmins(), ['alice']);
    assert.equal(await engine.people.activeUser('Zed'), undefined);
    assert.equal((await engine.people.listUsers()).find((u) => u.name === 'Zed')!.keys, 0);
    await engine.revokeKeys('bob');
    await engine.revokeKeys('alice');
    assert.equal(await engine.people.hasActiveKeys(), false);

    await engine.createSweep(sweep('a', 'bob'), newJobs('q1', 3), 'sw-q1');
    clock.t += 10_000;
    const since = clock.t;
    await engine.createSweep(sweep('b', 'bob'), newJobs('q2', 4), 'sw-q2');
    await engine.createSweep(sweep('c', 'alice'), newJobs('q3', 5), 'sw-q3');
    await engine.createSweep(sweep('d', 'bob'), [], 'sw-q4');
    assert.equal(await engine.people.imagesSubmittedSince('bob', since), 4, 'from `since` on');
    assert.equal(await engine.people.imagesSubmittedSince('bob', since - 10_000), 7);
    assert.equal(await engine.people.imagesSubmittedSince('nobody', 0), 0);

    assert.equal(await engine.people.wildcardOwner('colors'), undefined);
    await engine.people.setWildcardOwner('colors', 'alice');
    await engine.people.setWildcardOwner('colors', 'bob');
    assert.equal(await engine.people.wildcardOwner('colors'), 'alice', 'the first writer keeps it');
    await engine.people.setWildcardOwner('animals', 'alice');
    await engine.people.setWildcardOwner('Birds', 'alice');
    await engine.people.setWildcardOwner('moods', 'bob');
    assert.deepEqual(await engine.people.wildcardsOf('alice'), ['Birds', 'animals', 'colors']);
    await engine.people.forgetWildcardOwner('colors');
    await engine.people.forgetWildcardOwner('never');
    assert.deepEqual(await engine.people.wildcardsOf('alice'), ['Birds', 'animals']);
    await engine.people.setWildcardOwner('colors', 'bob');
    assert.deepEqual(await engine.people.wildcardsOf('bob'), ['colors', 'moods']);
  });
}

export function quotaConformance(withFixture: WithFixture): void {
  withFixture("a daily quota checked in the sweep's own transaction: a sweep that would pass it stores nothing; two at once through two connections, one passes", async ({ engine, another }, clock) => {
    const other = await another();
    const quota = { imagesPerDay: 5, since: clock.t };
    await engine.createSweep(sweep('old', 'carol'), newJobs('qo', 9), 'sw-qo'); // before `since`: not counted
    clock.t += 1_000;
    quota.since = clock.t;
    await engine.createSweep({ ...sweep('a', 'carol'), quota }, newJobs('qa', 3), 'sw-qa');
    await assert.rejects(engine.createSweep({ ...sweep('b', 'carol'), quota }, newJobs('qb', 3), 'sw-qb'), (err: unknown) => err instanceof QuotaRaced && err.usedBefore === 3 && err.wanted === 3);
    assert.equal(await engine.getSweep('sw-qb'), undefined, 'nothing of it stored');
    assert.equal(await engine.getJob(jobId('sw-qb', 0)), undefined);
    await engine.createSweep({ ...sweep('c', 'carol'), quota }, newJobs('qc', 2), 'sw-qc');
    assert.equal(await engine.people.imagesSubmittedSince('carol', quota.since), 5, 'up to the quota exactly');
    await engine.createSweep({ ...sweep('d', 'dave'), quota }, newJobs('qd', 5), 'sw-qd');

    // Two submissions of one owner at once, each alone within the quota, together past it.
    const both = await Promise.allSettled([
      engine.createSweep({ ...sweep('e', 'erin'), quota }, newJobs('qe', 3), 'sw-qe'),
      other.createSweep({ ...sweep('f', 'erin'), quota }, newJobs('qf', 3), 'sw-qf'),
    ]);
    assert.deepEqual(both.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'exactly one passes');
    assert.ok(both.some((r) => r.status === 'rejected' && r.reason instanceof QuotaRaced));
    assert.equal(await engine.people.imagesSubmittedSince('erin', quota.since), 3);
  });
}

export function capConformance(withFixture: WithFixture): void {
  withFixture("caps counted in the insert's own transaction: webhooks farm-wide, live share links per owner (expired ones do not count)", async ({ engine }, clock) => {
    const hook = (owner: string) => ({ url: 'https://example.test/h', events: ['sweep.finished' as const], secret: 's', format: 'json' as const, owner, max: 2 });
    await engine.webhooks.createWebhook(hook('a'));
    await engine.webhooks.createWebhook(hook('b'));
    await assert.rejects(engine.webhooks.createWebhook(hook('c')), (err: unknown) => err instanceof CapReached && err.max === 2);
    assert.equal((await engine.webhooks.listWebhooks()).length, 2, 'nothing stored');
    assert.ok(await engine.webhooks.createWebhook({ ...hook('c'), max: undefined }), 'without a cap, as before');

    const share = (owner: string, expiresAt: number) => ({ title: 't', renderKeys: ['rk-1'], expiresAt, owner, maxLive: 2 });
    await engine.shares.create(share('ann', clock.t + 1_000));
    await engine.shares.create(share('ann', clock.t + 60_000));
    await assert.rejects(engine.shares.create(share('ann', clock.t + 60_000)), (err: unknown) => err instanceof CapReached && err.max === 2);
    assert.ok(await engine.shares.create(share('ben', clock.t + 60_000)), "another owner's links are counted apart");
    clock.t += 1_000; // ann's first link expires
    assert.ok(await engine.shares.create(share('ann', clock.t + 60_000)), 'an expired link does not count');
    assert.equal((await engine.shares.list('ann')).length, 3);
  });
}

export function retentionConformance(withFixture: WithFixture): void {
  withFixture('retention: published outbox rows and result audits older than a time go in batches of a limit, oldest first; unpublished rows stay', async ({ engine }, clock) => {
    await engine.createSweep(sweep('r'), newJobs('r', 3), 'sw-r');
    await drainEvents(engine); // sweep.created, published at t0
    const t0 = clock.t;
    for (let i = 0; i < 3; i++) {
      clock.t += 1_000;
      const j = (await engine.leaseNext('n1', PROC, LEASE))!;
      await engine.completeJob(j.id, 'n1', report(j));
    }
    clock.t += 1_000;
    const published = await engine.claimEvents(2, 60_000);
    await engine.markPublished(published.map((e) => e.id)); // two images, published at t0 + 4000
    assert.equal((await engine.listings.pendingEvents(10)).length, 2, 'the last image and sweep.done');

    assert.equal(await engine.retention.pruneOutbox(t0, 10), 0, 'published at t0: not before t0');
    assert.equal(await engine.retention.pruneOutbox(t0 + 1, 10), 1);
    assert.equal(await engine.retention.pruneOutbox(clock.t + 1, 1), 1, 'a batch of one');
    assert.equal(await engine.retention.pruneOutbox(clock.t + 1, 10), 1);
    assert.equal(await engine.retention.pruneOutbox(clock.t + 1_000_000, 10), 0, 'unpublished rows stay');
    assert.equal((await engine.listings.pendingEvents(10)).length, 2);

    // Results recorded at t0 + 1000, + 2000, + 3000.
    assert.equal(await engine.retention.pruneResults(t0 + 1_000, 10), 0);
    assert.equal(await engine.retention.pruneResults(t0 + 2_500, 10), 2);
    assert.deepEqual(await engine.listings.results(jobId('sw-r', 0)), [], 'the oldest went');
    assert.equal((await engine.listings.results(jobId('sw-r', 2))).length, 1);
    assert.equal(await engine.retention.pruneResults(clock.t, 1), 1);
    assert.equal(await engine.retention.pruneResults(clock.t, 1), 0);
  });
}

export function retentionDutyConformance(withFixture: WithFixture): void {
  withFixture('retention as a duty: only its holder prunes (a batch per statement, until none is left); released, another connection takes it over', async ({ engine, another }, clock) => {
    const other = await another();
    const t0 = clock.t;
    await engine.createSweep(sweep('rd'), newJobs('rd', 1), 'sw-rd');
    await drainEvents(engine);
    clock.t += 1_000;
    const j = (await engine.leaseNext('n1', PROC, LEASE))!;
    await engine.completeJob(j.id, 'n1', report(j));
    await drainEvents(engine);
    await engine.shares.create({ title: 'gone', renderKeys: [j.render_key], expiresAt: t0 + 500 });
    await engine.shares.create({ title: 'kept', renderKeys: [j.render_key], expiresAt: t0 + 1_000_000 });
    clock.t += 10_000;

    const opts = { outboxMs: 1_000, resultsMs: 1_000, webhookDeliveriesMs: 1_000, batch: 1, now: () => clock.t };
    const mine = new RetentionDuty(engine, opts);
    const theirs = new RetentionDuty(other, opts);
    assert.deepEqual(await mine.pass(), { outbox: 3, results: 1, webhookDeliveries: 0, shares: 1 }, 'sweep.created, the image and sweep.done; one result; the expired share');
    assert.equal(mine.leading(), true);
    assert.equal(await theirs.pass(), undefined, 'another holds the duty');
    assert.equal(theirs.leading(), false);
    assert.deepEqual(await mine.pass(), { outbox: 0, results: 0, webhookDeliveries: 0, shares: 0 }, 'kept the duty; nothing left');
    assert.equal((await engine.shares.listAll()).length, 1);

    await mine.stop();
    assert.equal(await mine.pass(), undefined, 'stopped');
    assert.deepEqual(await theirs.pass(), { outbox: 0, results: 0, webhookDeliveries: 0, shares: 0 }, 'taken over');
    assert.equal(theirs.leading(), true);
    await theirs.stop();
  });

  withFixture('retention duty stopped while its pass waits for the duty: the leadership won meanwhile is released, not kept', async ({ engine, another }) => {
    const other = await another();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // The same engine, its lead() answered only once the gate opens (as a slow leader connection would).
    const slow = Object.assign(Object.create(engine) as StoreEngine, { lead: async (duty: string) => {
        await gate;
        return engine.lead(duty);
      },
    });
    const duty = new RetentionDuty(slow, { outboxMs: 1_000, resultsMs: 1_000 });
    const passing = duty.pass();
    await duty.stop();
    open();
    assert.equal(await passing, undefined, 'stopped: no pruning');
    assert.equal(duty.leading(), false);
    const taken = await other.lead(RETENTION_DUTY);
    assert.ok(taken, 'the duty is free for another replica');
    await taken.release();
  });
}

export function galleryConformance(withFixture: WithFixture): void {
  withFixture('gallery, albums and metrics reads: announced images newest first per sweep, owner and keys; one image in full; an album prefers the owner\'s render; farm totals', async ({ engine }, clock) => {
    await engine.createSweep(sweep('g1', 'alice'), newJobs('g1', 3), 'sw-g1');
    await engine.createSweep(sweep('g2'), newJobs('g2', 2, { seed: 7 }), 'sw-g2');
    await engine.createSweep(sweep('g3'), newJobs('g1', 1), 'sw-g3'); // the same image as sw-g1's first, for local
    const order: string[] = [];
    for (const sweepId of ['sw-g1', 'sw-g2', 'sw-g3']) {
      for (const other of ['sw-g1', 'sw-g2', 'sw-g3']) await engine.setPaused(other, other !== sweepId);
      for (let j = await engine.leaseNext('n1', PROC, LEASE); j; j = await engine.leaseNext('n1', PROC, LEASE)) {
        clock.t += 1_000;
        await engine.completeJob(j.id, 'n1', report(j, sweepId === 'sw-g3'));
        order.push(j.id);
      }
    }
    const url = (key: string) => `/files/${key}`;
    const all = await engine.gallery.listImages({ offset: 0, limit: 10 }, url);
    assert.equal(all.total, 5, 'the skipped repeat was announced before: not listed twice');
    assert.deepEqual(all.images.map((i) => i.renderKey), ['rk-g2-1', 'rk-g2-0', 'rk-g1-2', 'rk-g1-1', 'rk-g1-0']);
    const g10 = (await engine.getJob(jobId('sw-g1', 0)))!;
    assert.deepEqual(all.images[4], {
      key: g10.image_key, renderKey: 'rk-g1-0', url: `/files/${g10.image_key}`, thumbUrl: `/files/${g10.thumb_key}`, prompt: g10.prompt, seed: g10.seed, sweepId: 'sw-g1', favorite: null,
    });
    const page = await engine.gallery.listImages({ owner: 'alice', offset: 1, limit: 1 }, url, new Set(['rk-g1-1']));
    assert.deepEqual([page.total, page.images.map((i) => [i.renderKey, i.favorite])], [3, [['rk-g1-1', true]]]);
    const keyed = await engine.gallery.listImages({ sweep: 'sw-g2', renderKeys: ['rk-g2-0', 'rk-g1-0'], offset: 0, limit: 10 }, url, new Set());
    assert.deepEqual([keyed.total, keyed.images.map((i) => [i.renderKey, i.favorite])], [1, [['rk-g2-0', false]]]);
    assert.deepEqual(await engine.gallery.listImages({ renderKeys: [], offset: 0, limit: 10 }, url), { total: 0, images: [] });

    const detail = (await engine.gallery.imageDetail('rk-g1-0', url))!;
    assert.deepEqual(detail, {
      ...all.images[4]!, jobId: g10.id, sweepName: 'g1', params: { steps: 4 }, backend: 'procedural', model: 'm1', node: 'n1', renderMs: 1_234,
      finishedAt: new Date(g10.finished_at!).toISOString(), nextSeed: 1001,
    }, 'the done render, not the later skip');
    assert.deepEqual(await engine.gallery.imageDetail(g10.image_key!, url), detail, 'by image key too');
    assert.equal((await engine.gallery.imageDetail('rk-g2-1', url))!.nextSeed, 8);
    assert.equal(await engine.gallery.imageDetail('rk-none', url), undefined);

    assert.equal((await engine.gallery.albumJob('rk-g1-0', 'local'))?.sweep_id, 'sw-g3', "local's own render");
    assert.equal((await engine.gallery.albumJob('rk-g1-0', 'alice'))?.sweep_id, 'sw-g1');
    assert.equal((await engine.gallery.albumJob('rk-g2-0', 'alice'))?.sweep_id, 'sw-g2', "another's when the owner has none");
    assert.equal(await engine.gallery.albumJob('rk-none', 'alice'), undefined);

    assert.equal(await engine.gallery.upscaled('rk-g1-0'), false);
    await engine.createSweep({ ...sweep('up'), kind: 'upscale' }, newJobs('up', 1, { renderKey: 'rk-g1-0', kind: 'upscale', sourceKey: g10.image_key! }), 'sw-up');
    await engine.setPaused('sw-g3', true);
    const up = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(up.kind, 'upscale');
    const keys = ownKeys(up);
    assert.equal((await engine.completeJob(up.id, 'n1', { ...keys, renderMs: 50, skipped: false })).accepted, true);
    assert.equal(await engine.gallery.upscaled('rk-g1-0'), true);
    assert.equal((await engine.gallery.listImages({ offset: 0, limit: 10 }, url)).total, 5, 'an upscale is not another image');

    await engine.nodes.upsertNode('n1', 'gpu', {});
    await engine.createSweep(sweep('q'), newJobs('q', 2), 'sw-q');
    await engine.cancelSweep('sw-q');
    await engine.createSweep(sweep('open'), newJobs('o', 1), 'sw-open');
    await drainEvents(engine);
    await engine.appendEvent('x.test', 'm-1', {});
    assert.deepEqual(await engine.gallery.farmCounts(), {
      jobs: [{ state: 'cancelled', n: 2 }, { state: 'done', n: 6 }, { state: 'queued', n: 1 }, { state: 'skipped', n: 1 }],
      nodes: 1,
      outboxPending: 1,
      sweeps: [{ status: 'cancelled', n: 1 }, { status: 'done', n: 4 }, { status: 'queued', n: 1 }],
    });
    assert.equal(order.length, 6);
  });
}
