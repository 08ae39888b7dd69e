/**
 * Favorites per user on a real farm (nats-server, s3rver, coordinator,
 * gpu-node and indexer as processes; issue 16): alice and bob render the
 * same sweep (the same images: one render key each, one row in the
 * indexer), star different images of it through the coordinator, and each
 * sees only their own stars; the taste model is each one's own: bob gets
 * 409 while alice has a ranking, then, with ten stars each, their rankings
 * differ and each marks only their own favorites. A caller reaching the
 * indexer directly cannot claim a user.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const ADMIN = 'farm-admin-token-for-the-favorites-test';
// Three colours × 8 seeds: 24 images, the same for both users.
const SPEC = { name: 'shapes', prompts: ['a red circle', 'a blue square', 'a green triangle'], seeds: { count: 8 }, params: { width: 64, height: 64, steps: 2 } };

interface Image {
  key: string;
  renderKey: string;
  prompt: string;
}
interface Best {
  results: { renderKey: string; score: number; favorite: boolean }[];
  scoredBy: string;
  model: { positives: number; negatives: number };
}

describe('favorites and taste per user', { timeout: 300_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;
  const keys: Record<string, string> = {};

  before(async () => {
    tmp = tempDir();
    farm = await startFarm({ dir: tmp.dir, nodes: 1, indexer: true, env: { NIGHTSHIFT_API_TOKEN: ADMIN, NIGHTSHIFT_NODE_TOKEN: 'node-token-for-the-favorites-test' } });
    await waitForNodes(farm.apiUrl, 1, { authorization: `Bearer ${ADMIN}` });
  });
  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  const call = (who: string, method: string, path: string, body?: unknown) =>
    fetch(`${farm.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${who}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const json = async <T>(res: Response | Promise<Response>, status = 200): Promise<T> => {
    const r = await res;
    const text = await r.text();
    assert.equal(r.status, status, `${r.url}: ${text}`);
    return JSON.parse(text) as T;
  };
  const star = (who: string, img: Image, on = true) => json(call(keys[who]!, on ? 'PUT' : 'DELETE', `/api/favorites/${img.key}`));
  const favorites = async (who: string) => (await json<{ favorites: { renderKey: string }[] }>(call(keys[who]!, 'GET', '/api/favorites'))).favorites.map((f) => f.renderKey).sort();

  test('alice and bob star the same images apart, and each model learns from its own stars only', async () => {
    for (const name of ['alice', 'bob']) keys[name] = (await json<{ key: string }>(call(ADMIN, 'POST', '/api/keys', { name }), 201)).key;
    const sweeps: Record<string, string> = {};
    for (const who of ['alice', 'bob']) {
      const { id } = await json<{ id: string }>(call(keys[who]!, 'POST', '/api/sweeps', SPEC), 201);
      sweeps[who] = id;
      // One at a time: bob's jobs find alice's images already stored.
      await waitFor(`${who}'s sweep to finish`, async () => (await json<{ status: string }>(call(keys[who]!, 'GET', `/api/sweeps/${id}`))).status === 'done', 120_000);
    }
    const images = async (who: string) => (await json<{ images: Image[] }>(call(keys[who]!, 'GET', `/api/sweeps/${sweeps[who]}/images`))).images;
    const aliceImages = await images('alice');
    assert.equal(aliceImages.length, 24);
    assert.deepEqual((await images('bob')).map((i) => i.renderKey).sort(), aliceImages.map((i) => i.renderKey).sort(), 'the same 24 images in both sweeps');
    await waitFor('24 images indexed', async () => ((await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number }).indexed === 24, 60_000);

    const red = aliceImages.filter((i) => i.prompt.includes('red'));
    const blue = aliceImages.filter((i) => i.prompt.includes('blue'));
    const green = aliceImages.filter((i) => i.prompt.includes('green'));
    const shared = green[0]!;
    // alice: 8 red and 2 green, bob: 8 blue and 2 green; green[0] starred by both.
    const aliceStars = [...red, shared, green[1]!];
    const bobStars = [...blue, shared, green[2]!];
    for (const img of aliceStars) await star('alice', img);
    for (const img of bobStars.slice(0, 5)) await star('bob', img);
    assert.deepEqual(await favorites('alice'), aliceStars.map((i) => i.renderKey).sort());
    assert.deepEqual(await favorites('bob'), bobStars.slice(0, 5).map((i) => i.renderKey).sort(), "bob sees his own stars, not alice's");

    // bob's five stars are too few for him, whatever alice starred.
    const bobTooFew = await call(keys.bob!, 'GET', '/api/best?k=5');
    assert.equal(bobTooFew.status, 409, await bobTooFew.clone().text());
    assert.match(((await bobTooFew.json()) as { error: string }).error, /5 of the 10/);
    const aliceBest = await json<Best>(call(keys.alice!, 'GET', `/api/sweeps/${sweeps.alice}/best?k=24`));
    assert.equal(aliceBest.scoredBy, 'taste');
    assert.deepEqual([aliceBest.model.positives, aliceBest.model.negatives], [10, 14]);

    for (const img of bobStars.slice(5)) await star('bob', img);
    // Unstarring the image both starred is alice's alone.
    await star('alice', shared, false);
    assert.ok(!(await favorites('alice')).includes(shared.renderKey));
    assert.ok((await favorites('bob')).includes(shared.renderKey), "bob's star on the same image stays");
    await star('alice', shared);

    const best = async (who: string) => json<Best>(call(keys[who]!, 'GET', '/api/best?k=24'));
    const [a, b] = [await best('alice'), await best('bob')];
    assert.deepEqual([a.model.positives, b.model.positives], [10, 10]);
    const marked = (x: Best) => x.results.filter((r) => r.favorite).map((r) => r.renderKey).sort();
    assert.deepEqual(marked(a), aliceStars.map((i) => i.renderKey).sort(), "alice's ranking marks her stars");
    assert.deepEqual(marked(b), bobStars.map((i) => i.renderKey).sort(), "bob's ranking marks his");
    const order = (x: Best) => x.results.map((r) => r.renderKey);
    assert.notDeepEqual(order(a), order(b), 'two people, two rankings');
    // Each one's learned taste puts their own colour above the other's.
    const mean = (x: Best, set: Image[]) => {
      const keysOf = new Set(set.map((i) => i.renderKey));
      const s = x.results.filter((r) => keysOf.has(r.renderKey)).map((r) => r.score);
      return s.reduce((p, q) => p + q, 0) / s.length;
    };
    assert.ok(mean(a, red) > mean(a, blue), `alice: red ${mean(a, red)} vs blue ${mean(a, blue)}`);
    assert.ok(mean(b, blue) > mean(b, red), `bob: blue ${mean(b, blue)} vs red ${mean(b, red)}`);
    // Search's favorites filter is the caller's too.
    const searched = await json<{ results: { renderKey: string; favorite: boolean }[] }>(call(keys.bob!, 'GET', `/api/search?q=a%20shape&favorites=true&k=50`));
    assert.deepEqual(searched.results.map((r) => r.renderKey).sort(), bobStars.map((i) => i.renderKey).sort());
    assert.ok(searched.results.every((r) => r.favorite));
  });

  test('the indexer reached directly: no user can be claimed without the farm token', async () => {
    const claim = (authorization?: string) =>
      fetch(`${farm.indexerUrl}/api/favorites`, { headers: { 'x-nightshift-user': 'alice', ...(authorization ? { authorization } : {}) } });
    assert.equal((await claim()).status, 401);
    assert.equal((await claim(`Bearer ${keys.bob}`)).status, 401, "bob's key is the coordinator's, not the indexer's");
    // A client's own header through the coordinator names nobody but the key's user.
    const viaCoordinator = await fetch(`${farm.apiUrl}/api/favorites`, { headers: { authorization: `Bearer ${keys.bob}`, 'x-nightshift-user': 'alice' } });
    assert.deepEqual(((await viaCoordinator.json()) as { favorites: { renderKey: string }[] }).favorites.map((f) => f.renderKey).sort(), await favorites('bob'));
  });
});
