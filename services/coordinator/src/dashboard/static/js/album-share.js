// @ts-check
// "Download album" and "Share link" for what a page shows (a sweep, or the
// favorites): the album as a .zip (POST /api/albums/zip, the same album
// `nightshift album` writes) and a read-only link that expires
// (POST /api/shares; revoked with DELETE /api/shares/:id).
import { askToken, authHeaders, getToken } from './auth.js';
import { h, messageOf, showMsg } from './dom.js';
import { request } from './request.js';

/**
 * What an album is made of (the body of POST /api/albums).
 * @typedef {{ favorites?: true, sweep?: string }} AlbumSelection
 * @typedef {{ id: string, url: string, expiresAt: string, images: number }} ShareMade
 */

const EXPIRIES = [
  ['1h', '1 hour'],
  ['1d', '1 day'],
  ['7d', '7 days'],
  ['30d', '30 days'],
];

/**
 * Downloads the album as a .zip: fetched with the bearer token (a plain link could not send it), saved from a blob.
 * @param {AlbumSelection} selection
 */
async function downloadAlbum(selection) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch('/api/albums/zip', { method: 'POST', headers: { ...authHeaders(), 'content-type': 'application/json' }, body: JSON.stringify(selection) });
    if (res.status === 401 && attempt < 2) {
      if (!(await askToken(Boolean(getToken())))) throw new Error('This coordinator needs its API token.');
      continue;
    }
    if (!res.ok) {
      /** @type {{ error?: string }} */
      const body = await res.json().catch(() => ({}));
      throw new Error(body.error || `the download failed with HTTP ${res.status}`);
    }
    const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '')?.[1] || 'album.zip';
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    return name;
  }
}

/**
 * The bar: a download button, a share button with its expiry, and the link once made.
 * `selection` is asked at each click (the gallery's filters may change); null: nothing to put in an album.
 * @param {() => AlbumSelection | null} selection
 * @param {string} none what to say when there is nothing to choose
 */
export function albumShareBar(selection, none) {
  const msg = h('span', { class: 'msg', role: 'status' });
  const expiry = h('select', { id: 'share-expiry', 'aria-label': 'Link expires after' }, EXPIRIES.map(([v, label]) => h('option', { value: v, text: label, selected: v === '7d' })));
  const linkBox = h('span', { id: 'share-made', hidden: true });
  const chosen = () => {
    const sel = selection();
    if (!sel) showMsg(msg, none, true);
    return sel;
  };
  const download = h('button', {
    type: 'button',
    id: 'album-download',
    text: 'Download album (.zip)',
    onclick: async () => {
      const sel = chosen();
      if (!sel) return;
      showMsg(msg, 'Packing the album…');
      try {
        showMsg(msg, `Saved ${await downloadAlbum(sel)}.`);
      } catch (err) {
        showMsg(msg, messageOf(err), true);
      }
    },
  });
  const share = h('button', {
    type: 'button',
    id: 'share-make',
    text: 'Share link',
    onclick: async () => {
      const sel = chosen();
      if (!sel) return;
      try {
        const expiresIn = /** @type {HTMLSelectElement} */ (expiry).value;
        /** @type {ShareMade} */
        const made = await request('/api/shares', { method: 'POST', body: { ...sel, expiresIn } });
        const input = h('input', { id: 'share-url', type: 'text', readonly: true, value: made.url, size: 48, 'aria-label': 'Share link' });
        const revoke = h('button', {
          type: 'button',
          text: 'Revoke',
          class: 'danger',
          onclick: async () => {
            try {
              await request(`/api/shares/${encodeURIComponent(made.id)}`, { method: 'DELETE' });
              linkBox.replaceChildren();
              linkBox.hidden = true;
              showMsg(msg, 'Link revoked: it now answers 404.');
            } catch (err) {
              showMsg(msg, messageOf(err), true);
            }
          },
        });
        const copy = h('button', { type: 'button', text: 'Copy', onclick: () => void window.navigator.clipboard?.writeText(made.url).then(() => showMsg(msg, 'Copied.')) });
        linkBox.replaceChildren(input, copy, revoke);
        linkBox.hidden = false;
        showMsg(msg, `Anyone with the link sees these ${made.images} image(s), read-only, until ${new Date(made.expiresAt).toLocaleString()}.`);
      } catch (err) {
        showMsg(msg, messageOf(err), true);
      }
    },
  });
  return h('div', { class: 'actions album-share', id: 'album-share' }, download, h('label', { for: 'share-expiry', text: 'Link for' }), expiry, share, linkBox, msg);
}
