import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import { albumFiles, albumHtml, albumZip, escapeHtml, writeAlbumFolder, type Album } from './mod.js';

const RK1 = 'a'.repeat(64);
const RK2 = 'b'.repeat(64);
const HOSTILE = `<script>alert("x")</script><img src=x onerror=alert(1)> & 'quoted'`;
const album: Album = {
  title: `Favorites <b>&</b>`,
  createdAt: '2026-11-29T00:00:00.000Z',
  images: [
    { renderKey: RK1, prompt: HOSTILE, seed: 7, sweepId: 'sw_1', params: { width: 64, height: 32, sampler: '<euler>' }, upscaled: true },
    { renderKey: RK2, prompt: 'a blue square', seed: 8, sweepId: null, params: {}, upscaled: false },
  ],
};

test('escapeHtml leaves no markup-significant character', () => {
  assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});

test('the page escapes every prompt, title and setting and has no script', () => {
  const html = albumHtml(album, { upscaled: true });
  assert.ok(!html.includes('<script'), 'no script element, even from a prompt');
  assert.ok(!html.includes('<img src=x'), 'the prompt\'s markup is text');
  assert.ok(html.includes(escapeHtml(HOSTILE)));
  assert.ok(html.includes('Favorites &lt;b&gt;&amp;&lt;/b&gt;'));
  assert.ok(html.includes('&lt;euler&gt;'));
  // Relative links only: the folder works from file://.
  const links = [...html.matchAll(/(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
  assert.deepEqual(links.sort(), [`images/${RK1}.png`, `images/${RK1}.png`, `images/${RK2}.png`, `images/${RK2}.png`, `thumbs/${RK1}.webp`, `thumbs/${RK2}.webp`, `upscaled/${RK1}.png`].sort());
});

test('a share page leaves upscaled copies out', () => {
  assert.ok(!albumHtml(album, { upscaled: false }).includes('upscaled/'));
  assert.deepEqual(albumFiles(album, { upscaled: false }).map((f) => f.path), [`images/${RK1}.png`, `thumbs/${RK1}.webp`, `images/${RK2}.png`, `thumbs/${RK2}.webp`]);
});

test('a render key that would leave the album folder is refused', () => {
  const evil: Album = { ...album, images: [{ ...album.images[0]!, renderKey: '../../etc/passwd' }] };
  assert.throws(() => albumFiles(evil, { upscaled: true }), /refusing object key/);
});

const read = async (key: string) => new TextEncoder().encode(`bytes of ${key}`);

test('the folder and the zip hold the same files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'album-'));
  try {
    const seen: number[] = [];
    assert.equal(await writeAlbumFolder(dir, album, read, { upscaled: true, onFile: (n) => seen.push(n) }), 5);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.deepEqual(readdirSync(dir).sort(), ['album.json', 'images', 'index.html', 'thumbs', 'upscaled']);
    assert.equal(readFileSync(join(dir, `upscaled/${RK1}.png`), 'utf8'), `bytes of upscaled/${RK1}.png`);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'album.json'), 'utf8')), album);

    const zip = new AdmZip(await albumZip(album, read, { upscaled: true }));
    const names = zip.getEntries().map((e) => e.entryName).sort();
    assert.deepEqual(names, ['album.json', `images/${RK1}.png`, `images/${RK2}.png`, 'index.html', `thumbs/${RK1}.webp`, `thumbs/${RK2}.webp`, `upscaled/${RK1}.png`]);
    assert.equal(zip.readAsText(`thumbs/${RK2}.webp`), `bytes of thumbs/${RK2}.webp`);
    assert.equal(zip.getEntry(`images/${RK1}.png`)!.header.method, 0, 'images stored, not deflated again');
    assert.equal(zip.readAsText('index.html'), readFileSync(join(dir, 'index.html'), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
