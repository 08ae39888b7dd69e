import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { migrate } from '../db.js';
import { ShareStore } from './shares.js';

const RK = (c: string) => c.repeat(64);

function store() {
  const db = new Database(':memory:');
  db.pragma('foreign_keys = ON');
  migrate(db);
  let now = 1_000_000;
  return { shares: new ShareStore(db, () => now), db, advance: (ms: number) => (now += ms) };
}

test('a share holds exactly its images, in order, until it expires', () => {
  const { shares, advance } = store();
  const s = shares.create({ title: 'favorites', renderKeys: [RK('b'), RK('a'), RK('b')], expiresAt: 1_000_000 + 60_000 });
  assert.equal(s.owner, 'local');
  assert.equal(s.images, 2, 'an image listed twice is shared once');
  assert.deepEqual(shares.renderKeys(s.id), [RK('b'), RK('a')]);
  assert.ok(shares.holds(s.id, RK('a')));
  assert.ok(!shares.holds(s.id, RK('c')));
  assert.equal(shares.live(s.id)?.id, s.id);
  advance(60_000);
  assert.equal(shares.live(s.id), undefined, 'expired at expires_at');
  assert.equal(shares.list().length, 1, 'still listed until pruned');
  assert.equal(shares.pruneExpired(), 1);
  assert.deepEqual(shares.list(), []);
});

test('delete revokes at once and takes the images with it', () => {
  const { shares, db } = store();
  const s = shares.create({ title: 'x', renderKeys: [RK('a')], expiresAt: 2_000_000 });
  assert.equal(shares.delete(s.id, 'someone-else'), false, 'only its owner deletes it');
  assert.equal(shares.delete(s.id), true);
  assert.equal(shares.live(s.id), undefined);
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM share_images').get() as { n: number }).n, 0);
  assert.equal(shares.delete(s.id), false);
});
