/**
 * The dashboard's static files: every client module is served as JavaScript
 * and every import between them resolves to a served file (so a split or
 * renamed module cannot leave a page without its code); nothing else under
 * static/, and nothing outside it, can be asked for.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hono } from 'hono';
import { loadStaticAssets, STATIC_PATH } from './assets.js';
import { layout } from './pages.js';

const assets = loadStaticAssets();
const app = new Hono().get(`${STATIC_PATH}/*`, assets.serve);
const get = (path: string, headers: Record<string, string> = {}) => app.request(`${STATIC_PATH}/${path}`, { headers });

describe('static assets', () => {
  test('the entry and its modules are served as JavaScript, cached for good under the current version', async () => {
    assert.equal(assets.modules[0], 'app.js');
    assert.equal(assets.base, `${STATIC_PATH}/${assets.version}`);
    assert.ok(assets.modules.length > 5 && assets.modules.every((m) => m.endsWith('.js')), assets.modules.join(' '));
    for (const m of assets.modules) {
      const res = await get(`${assets.version}/${m}`, { 'accept-encoding': 'gzip' });
      assert.equal(res.status, 200, m);
      assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8', m);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', m);
      assert.equal(res.headers.get('content-encoding'), 'gzip');
      assert.match(await (await get(m)).text(), /^\/\/ @ts-check\n/, `${m} is type-checked`);
    }
    assert.equal((await get(`${assets.version}/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8');
  });

  test('without the current version a file is revalidated; ?v= still marks it immutable', async () => {
    for (const path of ['js/api.js', `${'0'.repeat(12)}/js/api.js`]) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('cache-control'), 'no-cache', path);
      assert.equal((await get(path, { 'if-none-match': res.headers.get('etag')! })).status, 304, path);
    }
    assert.match((await get(`app.js?v=${assets.version}`)).headers.get('cache-control') ?? '', /immutable/);
  });

  test('every relative import names a served module', async () => {
    const served = new Set(assets.modules);
    for (const m of assets.modules) {
      const source = await (await get(m)).text();
      for (const [, spec] of source.matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)) {
        const target = new URL(spec!, `http://x/${m}`).pathname.slice(1);
        assert.ok(served.has(target), `${m} imports ${spec}, which is not served`);
      }
    }
  });

  test('pages load the entry by version and preload the other modules', () => {
    const html = layout({ page: 'nodes', title: 't', body: '', assetBase: assets.base, modules: assets.modules });
    assert.ok(html.includes(`<script type="module" src="${assets.base}/app.js"></script>`));
    assert.ok(html.includes(`<link rel="stylesheet" href="${assets.base}/style.css">`));
    for (const m of assets.modules.slice(1)) assert.ok(html.includes(`<link rel="modulepreload" href="${assets.base}/${m}">`), m);
  });

  test('only the client files: no type declarations, no tsconfig, no way out of static/', async () => {
    const v = assets.version;
    for (const path of ['tsconfig.json', 'js/api-types.d.ts', `${v}/tsconfig.json`, 'js', 'js/', v, `${v}/`, '../index.ts', 'js/../../index.ts', `${v}/../index.ts`, 'js%2F..%2F..%2Findex.ts', `${v}%2F..%2F..%2Findex.ts`, '..%2Fassets.ts', '%2e%2e/assets.ts', 'nope.js', `${v}/nope.js`]) {
      assert.equal((await get(path)).status, 404, path);
    }
  });
});
