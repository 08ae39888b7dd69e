// @ts-check
// The image dialog (gallery and contact sheet): the image with its prompt,
// seed, settings, node and time; favorite, "more like this", "render more
// seeds", variations (img2img on the onnx backend) and upscale.
import { imageDetail, setFavorite, submitSweep, upscale } from './api.js';
import { $, enc, h, messageOf } from './dom.js';
import { fmtAgo } from './format.js';
import { fileSrc } from './request.js';
import { VARIATIONS_HINT, variationsSpec } from './variations.js';

/**
 * @typedef {import('./api-types.js').ImageDetail} ImageDetail
 * @typedef {object} ImageHint what the opener already knows, shown while the details load
 * @property {string} [prompt]
 * @property {number} [seed]
 * @property {string} [thumbUrl]
 * @property {string} [key]
 * @property {boolean | null} [favorite]
 */

/**
 * The image on show: its details once loaded, its favorite state.
 * @type {{ renderKey: string; hint: ImageHint; info: ImageDetail | null; favorite: boolean | null | undefined } | null}
 */
let shown = null;
/** @type {((on: boolean) => void) | null} */
let onShownFavorite = null;

/**
 * Shows a favorite toggle as on or off (the dialog's button has a label, a card's only the star).
 * @param {Element | null} btn
 * @param {boolean} on
 */
export function setFavButton(btn, on) {
  if (!btn) return;
  btn.setAttribute('aria-pressed', String(on));
  if (btn.firstChild) btn.firstChild.textContent = btn.id === 'img-fav' ? `${on ? '★' : '☆'} Favorite` : on ? '★' : '☆';
}

/**
 * Opens the dialog on one image.
 * @param {string} renderKey
 * @param {ImageHint} [hint]
 * @param {((on: boolean) => void) | null} [onFav] told when the favorite is toggled here
 */
export function openImage(renderKey, hint = {}, onFav = null) {
  const dlg = $('#image-dialog', HTMLDialogElement);
  onShownFavorite = onFav;
  shown = { renderKey, hint, info: null, favorite: hint.favorite };
  $('#img-title').textContent = hint.prompt || 'Image';
  const img = $('#img-full', HTMLImageElement);
  img.src = fileSrc(hint.thumbUrl || `/files/thumbs/${renderKey}.webp`);
  img.alt = hint.prompt ? `${hint.prompt}, seed ${hint.seed}` : '';
  $('#img-meta').replaceChildren();
  $('#img-msg').textContent = '';
  setFavButton($('#img-fav'), hint.favorite === true);
  $('#img-like', HTMLAnchorElement).href = `/ui/gallery?like=${enc(renderKey)}`;
  if (!dlg.open) dlg.showModal();
  void imageDetail(renderKey).then(
    (d) => {
      if (shown?.renderKey !== renderKey) return;
      shown = { ...shown, info: d, favorite: d.favorite ?? hint.favorite ?? null };
      $('#img-title').textContent = d.prompt;
      img.src = fileSrc(d.url);
      $('#img-full-link', HTMLAnchorElement).href = fileSrc(d.url);
      $('#img-sweep', HTMLAnchorElement).href = `/ui/sweeps/${enc(d.sweepId)}`;
      setFavButton($('#img-fav'), shown.favorite === true);
      const { width, height, steps, guidance, ...rest } = d.params || {};
      const rows = [
        ['Prompt', d.prompt],
        ['Seed', String(d.seed)],
        ['Size', `${width}×${height}`],
        ['Steps', String(steps)],
        ['Guidance', String(guidance)],
        ...Object.entries(rest).map(([k, v]) => [k, String(v)]),
        ['Backend', `${d.backend} · ${d.model}`],
        ['Rendered by', d.node || '—'],
        ['Render time', d.renderMs === null || d.renderMs === undefined ? '—' : `${(d.renderMs / 1000).toFixed(2)} s`],
        ['Finished', d.finishedAt ? `${new Date(d.finishedAt).toLocaleString()} (${fmtAgo(d.finishedAt)})` : '—'],
        ['Sweep', `${d.sweepName} (${d.sweepId})`],
        ['Key', d.key],
      ];
      $('#img-meta').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
      $('#img-more-count', HTMLInputElement).value = '4';
    },
    (err) => {
      $('#img-msg').textContent = messageOf(err);
    },
  );
}

/** Wires the dialog's buttons (once per page). */
export function setupImageDialog() {
  const msg = $('#img-msg');
  $('#img-fav').addEventListener('click', async () => {
    if (!shown) return;
    const current = shown;
    const btn = $('#img-fav');
    const on = btn.getAttribute('aria-pressed') !== 'true';
    setFavButton(btn, on);
    try {
      await setFavorite(current.renderKey, on);
      current.favorite = on;
      onShownFavorite?.(on);
    } catch (err) {
      setFavButton(btn, !on);
      msg.textContent = messageOf(err);
    }
  });
  $('#img-more-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = shown?.info;
    if (!d) {
      msg.textContent = 'Still loading the image details…';
      return;
    }
    const count = Number($('#img-more-count', HTMLInputElement).value);
    const start = d.nextSeed ?? d.seed + 1;
    const spec = {
      name: `more of: ${d.prompt}`.slice(0, 200),
      prompts: [d.prompt],
      seeds: { start, count },
      params: d.params,
      backend: d.backend,
      ...(d.model ? { model: d.model } : {}),
    };
    try {
      const res = await submitSweep(spec);
      location.href = `/ui/sweeps/${enc(res.id)}`;
    } catch (err) {
      msg.textContent = messageOf(err);
    }
  });
  $('#img-variations-hint').textContent = VARIATIONS_HINT;
  $('#img-variations').addEventListener('click', async () => {
    const d = shown?.info;
    if (!d) {
      msg.textContent = 'Still loading the image details…';
      return;
    }
    try {
      const res = await submitSweep(variationsSpec(d));
      msg.replaceChildren(`${res.jobs} variation${res.jobs === 1 ? '' : 's'} queued as `, h('a', { href: `/ui/sweeps/${enc(res.id)}`, text: res.id }), '.');
    } catch (err) {
      msg.textContent = messageOf(err);
    }
  });
  $('#img-upscale').addEventListener('click', async () => {
    if (!shown) return;
    try {
      const res = await upscale({ keys: [shown.info?.key || shown.hint.key || `images/${shown.renderKey}.png`] });
      msg.replaceChildren('Upscale queued as ', h('a', { href: `/ui/sweeps/${enc(res.id)}`, text: res.id }), '.');
    } catch (err) {
      msg.textContent = messageOf(err);
    }
  });
}
